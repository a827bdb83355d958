//! The server's state and its HTTP API (SPEC §5): each handler parses, asks the core through
//! the store, and answers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chrono::{DateTime, Utc};
use licet_core::{
    AccountFound, Code, Command, CouponBatch, CouponCode, Entropy, Error, Ledger, Mail, Outcome, Product,
    ProductSettings, Redeemed, Registered, Registration, Seat, Secret, TokenFormat, TokenSigner, TrialStarted,
};
use licet_store::{Store, StoreExt};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::data_dir::token_hash;
use crate::error::{AnsweredCode, ApiError};
use crate::extract::{Bearer, JsonBody, MAX_BODY};
use crate::outbox::Outbox;
use crate::ratelimit::RateLimiter;
use crate::wire;

/// The operating system's random source.
struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        // Without a working OS random source no key may be minted at all; there is no fallback.
        getrandom::fill(buf).expect("the operating system's random source must work");
    }
}

/// Everything a request handler needs.
pub(crate) struct App {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) ledger: Ledger,
    pub(crate) signer: TokenSigner,
    pub(crate) admin_hash: [u8; 32],
    pub(crate) clock: Clock,
    pub(crate) limiter: RateLimiter,
    pub(crate) outbox: Outbox,
    /// Bounds the commands in flight: the store runs them one at a time anyway, and a few
    /// dozen threads contending for its lock cost more than they gain in shared flushes.
    pub(crate) in_flight: tokio::sync::Semaphore,
    /// Portal sessions.
    pub(crate) sessions: crate::portal::Sessions,
    /// Whether the server speaks TLS (portal cookies are then `Secure`).
    pub(crate) tls: bool,
}

/// Commands in flight at once (see [`App::in_flight`]).
pub(crate) const MAX_IN_FLIGHT: usize = 16;

type AppState = Arc<App>;

fn rate_limited(wait: u64) -> ApiError {
    ApiError { retry_after: Some(wait), ..ApiError::new(Code::RateLimited) }
}

impl App {
    /// Runs a ledger command durably on a blocking thread, at `now`, and takes its outcome as the
    /// type the handler expects.
    pub(crate) async fn execute<T>(self: &Arc<Self>, now: DateTime<Utc>, command: Command) -> Result<T, ApiError>
    where
        T: TryFrom<Outcome, Error = Error> + Send + 'static,
    {
        let Ok(_permit) = self.in_flight.acquire().await else {
            return Err(ApiError::new(Code::InternalError));
        };
        let app = self.clone();
        let joined =
            tokio::task::spawn_blocking(move || app.store.execute::<T>(&app.ledger, now, &mut OsEntropy, &command))
                .await;
        match joined {
            Ok(result) => result.map_err(ApiError::from),
            Err(e) => {
                tracing::error!(error = %e, "a ledger command did not finish");
                Err(ApiError::new(Code::InternalError))
            }
        }
    }

    /// [`App::execute`] for a command that takes a credential: a failed one counts toward the
    /// client's limit ([`App::judge`]).
    async fn execute_judged<T>(
        self: &Arc<Self>,
        ip: IpAddr,
        now: DateTime<Utc>,
        command: Command,
    ) -> Result<T, ApiError>
    where
        T: TryFrom<Outcome, Error = Error> + Send + 'static,
    {
        let result = self.execute(now, command).await;
        self.judge(ip, result)
    }

    /// The answer to a command that bound a host: the license, the binding and a fresh token.
    /// The token is in the format the request asked for: release 0.1.0's unless the request
    /// carries the newer agents' marker.
    fn grant_answer(&self, license: Value, seat: &Seat, now: DateTime<Utc>, marker: Option<u8>) -> Value {
        let token = self.signer.issue_as(seat, now, TokenFormat::for_marker(marker));
        json!({"license": license, "binding_id": seat.binding.id, "token": token})
    }

    /// Refuses a client that used up its minute (for registrations and recoveries, which count
    /// whether they succeed or not), then counts this request.
    fn spend(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.limiter.check(ip).map_err(rate_limited)?;
        self.limiter.count(ip);
        Ok(())
    }

    /// Refuses a client that used up its minute of failed credentials before a command that
    /// takes a credential runs (license checks excepted: see [`App::judge`]).
    fn guard(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.limiter.check(ip).map_err(rate_limited)
    }

    /// Counts a failed credential; past the limit the answer becomes 429. Successes pass
    /// untouched — for license checks (`/v1/activate`) this is the only limit, so a host's
    /// successful checks are never refused, whatever else its IP did.
    fn judge<T>(&self, ip: IpAddr, result: Result<T, ApiError>) -> Result<T, ApiError> {
        match result {
            Err(e) if e.code.is_failed_credential() => {
                self.limiter.check(ip).map_err(rate_limited)?;
                self.limiter.count(ip);
                Err(e)
            }
            other => other,
        }
    }

    /// Checks the admin bearer token in constant time.
    fn admin(&self, ip: IpAddr, bearer: Result<Bearer, ApiError>) -> Result<(), ApiError> {
        self.guard(ip)?;
        let ok = bearer.map(|Bearer(token)| bool::from(token_hash(&token).ct_eq(&self.admin_hash)));
        match ok {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => {
                self.judge(ip, Err(ApiError::with_message(Code::Unauthorized, "a valid admin token is required")))
            }
        }
    }

    /// Writes a mail to the outbox durably before the request is answered. The account is
    /// already committed, so a failed write is logged for the operator (the customer can use
    /// `recover`), not turned into a failed request.
    async fn write_mail(self: &Arc<Self>, mail: Mail, now: DateTime<Utc>) {
        let app = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut id = [0u8; 8];
            OsEntropy.fill(&mut id);
            let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
            app.outbox.write(&mail, &id, now)
        })
        .await;
        match written {
            Ok(Ok(path)) => tracing::info!(path = %path.display(), "mail written to the outbox"),
            Ok(Err(e)) => tracing::error!(error = %e, "could not write mail to the outbox"),
            Err(e) => tracing::error!(error = %e, "the outbox writer did not finish"),
        }
    }
}

/// The API's routes. `/v1/admin/clock` exists only with a dev clock.
pub(crate) fn router(app: AppState) -> Router {
    let mut router = Router::new()
        .route("/v1/register", post(register))
        .route("/v1/activate", post(activate))
        .route("/v1/trial", post(trial))
        .route("/v1/redeem", post(redeem))
        .route("/v1/deactivate", post(deactivate))
        .route("/v1/recover", post(recover))
        .route("/v1/account", get(account))
        .route("/v1/bindings/{id}/reset", post(reset))
        .route("/v1/keys", get(keys))
        .route("/v1/health", get(health))
        .route("/v1/admin/products/{id}", put(put_product))
        .route("/v1/admin/coupons", post(issue_coupons))
        .route("/v1/admin/accounts", get(admin_account));
    if app.clock.is_dev() {
        router = router.route("/v1/admin/clock", post(set_clock));
    }
    router
        .merge(crate::portal::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(app)
}

/// One log line per request: method, path (never the query or body), status, code, latency.
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let start = Instant::now();
    let response = next.run(req).await;
    let code = response.extensions().get::<AnsweredCode>().map(|c| c.0.number());
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        code,
        latency_us = start.elapsed().as_micros() as u64,
        "request"
    );
    response
}

async fn not_found() -> ApiError {
    ApiError { status: Some(StatusCode::NOT_FOUND), ..ApiError::invalid("no such endpoint") }
}

async fn method_not_allowed() -> ApiError {
    ApiError { status: Some(StatusCode::METHOD_NOT_ALLOWED), ..ApiError::invalid("method not allowed") }
}

fn created(body: Value) -> Response {
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn register(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<wire::RegisterRequest>,
) -> Result<Response, ApiError> {
    app.spend(peer.ip())?;
    let reg = Registration {
        email: req.email,
        organization: req.organization,
        contact: req.contact,
        phone: req.phone,
        product: req.product,
        host: req.host.to_host()?,
    };
    let now = app.clock.now();
    let registered: Registered = app.execute(now, Command::Register(reg)).await?;
    app.write_mail(registered.mail, now).await;
    let seat = &registered.seat;
    let mut answer = app.grant_answer(wire::license(&seat.license, seat.seats_used), seat, now, req.token_format);
    answer["registration_number"] = json!(registered.number.to_string());
    Ok(created(answer))
}

async fn activate(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<wire::HostRequest>,
) -> Result<Response, ApiError> {
    let request = req.to_command()?;
    let now = app.clock.now();
    let seat: Seat = app.execute_judged(peer.ip(), now, Command::Activate(request)).await?;
    let answer = app.grant_answer(wire::license(&seat.license, seat.seats_used), &seat, now, req.token_format);
    Ok(axum::Json(answer).into_response())
}

async fn trial(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<wire::HostRequest>,
) -> Result<Response, ApiError> {
    app.guard(peer.ip())?;
    let request = req.to_command()?;
    let now = app.clock.now();
    let TrialStarted { trial, seat } = app.execute_judged(peer.ip(), now, Command::Trial(request)).await?;
    let seats_used = if seat.license.id == trial.id { seat.seats_used } else { 0 };
    Ok(created(app.grant_answer(wire::license(&trial, seats_used), &seat, now, req.token_format)))
}

async fn redeem(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<wire::RedeemRequest>,
) -> Result<Response, ApiError> {
    app.guard(peer.ip())?;
    let now = app.clock.now();
    let redeem = Command::Redeem { number: req.registration_number.map(Secret::from), coupon: req.coupon.into() };
    let Redeemed { license, seats_used } = app.execute_judged(peer.ip(), now, redeem).await?;
    Ok(axum::Json(json!({"license": wire::license(&license, seats_used)})).into_response())
}

async fn deactivate(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<wire::HostRequest>,
) -> Result<Response, ApiError> {
    app.guard(peer.ip())?;
    let request = req.to_command()?;
    let now = app.clock.now();
    app.execute_judged::<()>(peer.ip(), now, Command::Deactivate(request)).await?;
    Ok(axum::Json(json!({})).into_response())
}

async fn recover(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<wire::RecoverRequest>,
) -> Result<Response, ApiError> {
    app.spend(peer.ip())?;
    let now = app.clock.now();
    if let Some(mail) = app.execute::<Option<Mail>>(now, Command::Recover { email: req.email }).await? {
        app.write_mail(mail, now).await;
    }
    // The same answer whether or not the e-mail is known.
    Ok((StatusCode::ACCEPTED, axum::Json(json!({}))).into_response())
}

async fn account(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    bearer: Result<Bearer, ApiError>,
) -> Result<Response, ApiError> {
    app.guard(peer.ip())?;
    let result = match bearer {
        Ok(Bearer(credential)) => {
            app.execute::<AccountFound>(app.clock.now(), Command::Account { credential: credential.into() }).await
        }
        Err(e) => Err(e),
    };
    let found = app.judge(peer.ip(), result)?;
    Ok(axum::Json(wire::account(&found.account, &found.number, false)).into_response())
}

async fn reset(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    id: Result<Path<String>, PathRejection>,
    bearer: Result<Bearer, ApiError>,
) -> Result<Response, ApiError> {
    app.guard(peer.ip())?;
    let Path(id) = id.map_err(|_| ApiError::invalid("malformed binding id"))?;
    let result = match bearer {
        Ok(Bearer(credential)) => {
            let reset = Command::Reset { credential: credential.into(), binding_id: id };
            app.execute::<()>(app.clock.now(), reset).await
        }
        Err(e) => Err(e),
    };
    app.judge(peer.ip(), result)?;
    Ok(axum::Json(json!({})).into_response())
}

async fn keys(State(app): State<AppState>) -> Response {
    axum::Json(json!({"keys": [{
        "kid": app.signer.kid().to_string(),
        "public_key": app.signer.public_key_hex(),
        "active": true,
    }]}))
    .into_response()
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn put_product(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    id: Result<Path<String>, PathRejection>,
    bearer: Result<Bearer, ApiError>,
    JsonBody(req): JsonBody<wire::ProductRequest>,
) -> Result<Response, ApiError> {
    app.admin(peer.ip(), bearer)?;
    let Path(id) = id.map_err(|_| ApiError::invalid("malformed product id"))?;
    let settings = ProductSettings {
        name: req.name,
        trial_days: req.trial_days,
        trial_seats: req.trial_seats,
        offline_lease_hours: req.offline_lease_hours,
        clock_tolerance_minutes: req.clock_tolerance_minutes,
        refresh_hours: req.refresh_hours,
    };
    let product: Product = app.execute(app.clock.now(), Command::PutProduct { id, settings }).await?;
    Ok(axum::Json(wire::product(&product)).into_response())
}

async fn issue_coupons(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    bearer: Result<Bearer, ApiError>,
    JsonBody(req): JsonBody<wire::CouponsRequest>,
) -> Result<Response, ApiError> {
    app.admin(peer.ip(), bearer)?;
    let batch = CouponBatch { product: req.product, count: req.count, seats: req.seats, term_days: req.term_days };
    let codes: Vec<CouponCode> = app.execute(app.clock.now(), Command::IssueCoupons(batch)).await?;
    Ok(created(json!({"coupons": codes.iter().map(ToString::to_string).collect::<Vec<_>>()})))
}

async fn admin_account(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    bearer: Result<Bearer, ApiError>,
    query: Result<Query<wire::EmailQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    app.admin(peer.ip(), bearer)?;
    let Query(query) = query.map_err(|_| ApiError::invalid("the email query parameter is required"))?;
    let found: Option<AccountFound> =
        app.execute(app.clock.now(), Command::AccountByEmail { email: query.email }).await?;
    match found {
        Some(f) => Ok(axum::Json(wire::account(&f.account, &f.number, true)).into_response()),
        None => Err(ApiError {
            status: Some(StatusCode::NOT_FOUND),
            ..ApiError::invalid("no account is registered with this e-mail")
        }),
    }
}

async fn set_clock(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    bearer: Result<Bearer, ApiError>,
    JsonBody(req): JsonBody<wire::ClockRequest>,
) -> Result<Response, ApiError> {
    app.admin(peer.ip(), bearer)?;
    app.clock.set(req.now);
    Ok(axum::Json(json!({"now": wire::time(app.clock.now())})).into_response())
}
