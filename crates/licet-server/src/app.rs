//! The server's state and its HTTP API (SPEC §5): each handler turns a request into a ledger
//! [`Command`], runs it durably through [`App::execute`], and turns the outcome into an answer.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use licet_core::{
    AccountFound, Code, Command, Error, Ledger, Outcome, Redeemed, Registered, Registration, Seat, Secret, TokenFormat,
    TrialStarted,
};
use licet_store::{OsEntropy, Store, StoreExt};
use licet_wire::{
    AccountObject, Empty, GrantAnswer, HealthAnswer, HostRequest, KeysAnswer, LicenseAnswer, LicenseObject, Nonce,
    RecoverRequest, RedeemRequest, RegisterAnswer, RegisterRequest,
};
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::data_dir::token_hash;
use crate::error::ApiError;
use crate::extract::{Bearer, ClientIp, JsonBody};
use crate::ratelimit::Limiter;

/// Everything a request handler needs.
pub(crate) struct App {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) ledger: Ledger,
    /// The signing keys: this release's tokens by the active one, 0.1.0's by the oldest.
    pub(crate) keys: crate::keys::Keyring,
    pub(crate) admin_hash: [u8; 32],
    pub(crate) clock: Clock,
    pub(crate) limiter: Limiter,
    /// Wakes this node's postman when a command queued mail ([`crate::mail::Postman`]).
    pub(crate) mail_wake: tokio::sync::Notify,
    /// Bounds the commands in flight on blocking threads: the store runs them one at a time
    /// anyway, and a few dozen threads contending for its lock cost more than they gain in
    /// shared flushes.
    pub(crate) in_flight: tokio::sync::Semaphore,
    /// Bounds a cluster node's commands decided on the request's task and waiting for their
    /// transaction: they hold no thread, but a flood must not queue without end (each is
    /// withdrawn only after the store's timeout) nor starve the commands on blocking threads,
    /// which wait in the same queue.
    pub(crate) decided_in_flight: tokio::sync::Semaphore,
    /// The embedded store's flushing task: commands are applied on the request's task and await
    /// durability ([`crate::durability`]); `None` on a cluster's database.
    pub(crate) durability: Option<crate::durability::Durability>,
    /// The cluster's database, when this node is one (for `/v1/health`).
    pub(crate) database: Option<Arc<licet_store::PgStore>>,
    /// Peers whose `X-Forwarded-For` names the client.
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
}

/// What a definitive refusal of a license check is proven over (see [`App::prove_check`]).
pub(crate) struct Check<'a> {
    /// The registration number as sent.
    pub(crate) number: &'a str,
    /// The product.
    pub(crate) product: &'a str,
    /// The asking host.
    pub(crate) host: &'a licet_wire::HostJson,
    /// The request's nonce, if it sent one.
    pub(crate) nonce: Option<Nonce>,
}

/// Commands in flight at once (see [`App::in_flight`]).
pub(crate) const MAX_IN_FLIGHT: usize = 16;

/// A cluster node's commands decided on the request's task at once (see
/// [`App::decided_in_flight`]): sixteen transactions' worth.
pub(crate) const MAX_DECIDED_IN_FLIGHT: usize = 256;

pub(crate) type AppState = Arc<App>;

/// How a command's client is rate-limited (SPEC §4, 1062): per client IP and minute, counting
/// failed credentials — and every registration and recovery — but never a successful check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Every request counts, successful or not; over the limit it is refused before it runs.
    Spend,
    /// Over the limit the request is refused before it runs; failed credentials count.
    Guard,
    /// A license check: never refused before it runs, so a host's successful checks always
    /// pass; a failed credential counts, and past the limit is answered 429.
    Check,
}

/// The one table of which commands are limited how.
fn limit_of(command: &Command) -> Limit {
    match command {
        Command::Register(_) | Command::Recover { .. } => Limit::Spend,
        Command::Activate(_) | Command::Checkout(_) | Command::Heartbeat { .. } => Limit::Check,
        _ => Limit::Guard,
    }
}

impl App {
    /// Runs a ledger command durably at `now` — on the embedded store applied here and awaited
    /// durable; on a database decided here over the records the node remembers and awaited
    /// committed, else on a blocking thread — and takes its outcome as the type the handler
    /// expects.
    pub(crate) async fn execute<T>(self: &Arc<Self>, now: DateTime<Utc>, command: Command) -> Result<T, ApiError>
    where
        T: TryFrom<Outcome, Error = Error> + Send + 'static,
    {
        let started = std::time::Instant::now();
        let name = command.name();
        let result = self.execute_timed(now, command).await;
        crate::metrics::commit(name, started.elapsed());
        result
    }

    async fn execute_timed<T>(self: &Arc<Self>, now: DateTime<Utc>, command: Command) -> Result<T, ApiError>
    where
        T: TryFrom<Outcome, Error = Error> + Send + 'static,
    {
        if let Some(durability) = &self.durability {
            let outcome = durability.execute(&self.ledger, now, &command).await?;
            return outcome.try_into().map_err(ApiError::from);
        }
        if let Some(database) = &self.database {
            let Ok(_permit) = self.decided_in_flight.acquire().await else {
                return Err(ApiError::new(Code::InternalError));
            };
            // Decided on this task over the records the node remembers, when it does.
            let mut outcome = None;
            let decided = database.decide_remembered(&mut |tx| {
                outcome = Some(self.ledger.handle(tx, now, &mut OsEntropy, &command)?);
                Ok(())
            });
            if let Some(decided) = decided
                && let Some(result) = decided.committed().await
            {
                crate::metrics::database_command("remembered");
                let no_outcome = || Error::Internal("a command succeeded without an outcome".into());
                return result.and_then(|()| outcome.ok_or_else(no_outcome)?.try_into()).map_err(ApiError::from);
            }
        }
        let Ok(_permit) = self.in_flight.acquire().await else {
            return Err(ApiError::new(Code::InternalError));
        };
        if self.database.is_some() {
            crate::metrics::database_command("transaction");
        }
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

    /// [`App::execute`] for a request from `ip`, under the command's rate limit ([`limit_of`]).
    pub(crate) async fn execute_limited<T>(
        self: &Arc<Self>,
        ip: IpAddr,
        now: DateTime<Utc>,
        command: Command,
    ) -> Result<T, ApiError>
    where
        T: TryFrom<Outcome, Error = Error> + Send + 'static,
    {
        let limit = self.admit(ip, &command).await?;
        let result = self.execute(now, command).await;
        match result {
            Err(e) if limit != Limit::Spend && e.code.is_failed_credential() => self.count_failure(ip, e).await,
            other => other,
        }
    }

    /// The part of `command`'s rate limit ([`limit_of`]) that comes before it runs: a request
    /// over the limit is refused here.
    pub(crate) async fn admit(&self, ip: IpAddr, command: &Command) -> Result<Limit, ApiError> {
        let limit = limit_of(command);
        match limit {
            Limit::Spend => self.limiter.spend(ip).await?,
            Limit::Guard => self.limiter.check(ip).await?,
            Limit::Check => {}
        }
        Ok(limit)
    }

    /// Counts a failed credential; past the limit the answer becomes 429.
    async fn count_failure<T>(&self, ip: IpAddr, failure: ApiError) -> Result<T, ApiError> {
        self.limiter.spend(ip).await?;
        Err(failure)
    }

    /// The customer credential of `Authorization: Bearer …`; a missing or malformed one counts as
    /// a failed credential.
    pub(crate) async fn bearer_credential(
        &self,
        ip: IpAddr,
        bearer: Result<Bearer, ApiError>,
    ) -> Result<Secret, ApiError> {
        match bearer {
            Ok(Bearer(credential)) => Ok(credential.into()),
            Err(e) => self.count_failure(ip, e).await,
        }
    }

    /// Checks the admin bearer token in constant time, under the rate limit.
    pub(crate) async fn admin(&self, ip: IpAddr, bearer: Result<Bearer, ApiError>) -> Result<(), ApiError> {
        self.limiter.check(ip).await?;
        let ok = bearer.map(|Bearer(token)| bool::from(token_hash(&token).ct_eq(&self.admin_hash)));
        match ok {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => {
                let failure = ApiError::with_message(Code::Unauthorized, "a valid admin token is required");
                self.count_failure(ip, failure).await
            }
        }
    }

    /// A signed token for `seat`, in the format the request asked for — release 0.1.0's unless
    /// the request carries the newer agents' marker — naming the request's nonce, if it sent one,
    /// so that the agent knows the answer is fresh.
    fn token(&self, seat: &Seat, now: DateTime<Utc>, marker: Option<u8>, nonce: Option<Nonce>) -> String {
        match TokenFormat::for_marker(marker) {
            TokenFormat::V1 => self.keys.legacy.issue_as(seat, now, TokenFormat::V1, None),
            format => self.keys.active.issue_as(seat, now, format, nonce.map(|n| n.0)),
        }
    }

    /// A definitive refusal of a license check carries the server's signed statement of it, when
    /// the request sent a nonce to bind it to (SPEC §3): only then may an agent drop its token.
    fn prove(&self, refusal: ApiError, request: &HostRequest, now: DateTime<Utc>) -> ApiError {
        let HostRequest { registration_number: number, product, host, nonce, .. } = request;
        self.prove_check(refusal, Check { number, product, host, nonce: *nonce }, now)
    }

    /// [`App::prove`] for any request that checks a license of a product on a host.
    pub(crate) fn prove_check(&self, mut refusal: ApiError, check: Check<'_>, now: DateTime<Utc>) -> ApiError {
        if let Some(nonce) = check.nonce
            && refusal.code.is_definitive()
            && let Ok(host) = check.host.to_host()
        {
            let digest = host.fingerprint.digest();
            let proof = self.keys.active.sign_refusal(refusal.code, check.product, &digest, check.number, now, nonce.0);
            refusal.proof = Some(proof);
        }
        refusal
    }
}

/// The API's routes (SPEC §5), with their state.
pub(crate) fn routes(app: AppState) -> Router {
    let router = Router::new()
        .route("/v1/register", post(register))
        .route("/v1/activate", post(activate))
        .route("/v1/trial", post(trial))
        .route("/v1/redeem", post(redeem))
        .route("/v1/deactivate", post(deactivate))
        .route("/v1/recover", post(recover))
        .route("/v1/account", get(account))
        .route("/v1/bindings/{id}/reset", post(reset))
        .route("/v1/offline/activate", post(crate::offline::activate))
        .route("/v1/sessions", post(crate::sessions::checkout))
        .route("/v1/sessions/{id}/heartbeat", post(crate::sessions::heartbeat))
        .route("/v1/sessions/{id}", delete(crate::sessions::release))
        .route("/v1/keys", get(keys))
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(crate::openapi::serve))
        .merge(crate::admin::routes(&app));
    router.with_state(app)
}

pub(crate) fn json<T: serde::Serialize>(status: StatusCode, body: T) -> Response {
    (status, axum::Json(body)).into_response()
}

#[utoipa::path(post, path = "/v1/register", request_body = RegisterRequest, responses((status = 201, description = "the account, its trial and the host's token", body = RegisterAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)))]
async fn register(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> Result<Response, ApiError> {
    let registration = Registration {
        email: req.email,
        organization: req.organization,
        contact: req.contact,
        phone: req.phone,
        product: req.product,
        host: req.host.to_host()?,
        lang: req.lang.unwrap_or_default(),
    };
    let now = app.clock.now();
    let registered: Registered = app.execute_limited(ip, now, Command::Register(registration)).await?;
    app.mail_wake.notify_one();
    let seat = &registered.seat;
    Ok(json(
        StatusCode::CREATED,
        RegisterAnswer {
            registration_number: registered.number.to_string(),
            license: LicenseObject::at(&seat.license, seat.seats_used, &seat.product, now),
            binding_id: seat.binding.id.clone(),
            token: app.token(seat, now, req.token_format, req.nonce),
        },
    ))
}

#[utoipa::path(post, path = "/v1/activate", request_body = HostRequest, responses((status = 200, description = "the host's seat and token", body = GrantAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)))]
async fn activate(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<HostRequest>,
) -> Result<Response, ApiError> {
    let now = app.clock.now();
    let command = Command::Activate(req.to_command()?);
    let seat: Seat = app
        .execute_limited(ip, now, command)
        .await
        .map_err(|e| app.prove(e, &req, now).for_marker(req.token_format))?;
    Ok(json(
        StatusCode::OK,
        GrantAnswer {
            license: LicenseObject::at(&seat.license, seat.seats_used, &seat.product, now),
            binding_id: seat.binding.id.clone(),
            token: app.token(&seat, now, req.token_format, req.nonce),
        },
    ))
}

#[utoipa::path(post, path = "/v1/trial", request_body = HostRequest, responses((status = 201, description = "the trial and the host's token", body = GrantAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)))]
async fn trial(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<HostRequest>,
) -> Result<Response, ApiError> {
    let now = app.clock.now();
    let command = Command::Trial(req.to_command()?);
    let TrialStarted { trial, seat } = app
        .execute_limited(ip, now, command)
        .await
        .map_err(|e| app.prove(e, &req, now).for_marker(req.token_format))?;
    let seats_used = if seat.license.id == trial.id { seat.seats_used } else { 0 };
    Ok(json(
        StatusCode::CREATED,
        GrantAnswer {
            license: LicenseObject::at(&trial, seats_used, &seat.product, now),
            binding_id: seat.binding.id.clone(),
            token: app.token(&seat, now, req.token_format, req.nonce),
        },
    ))
}

#[utoipa::path(post, path = "/v1/redeem", request_body = RedeemRequest, responses((status = 200, description = "the license the coupon made or changed", body = LicenseAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)))]
async fn redeem(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<RedeemRequest>,
) -> Result<Response, ApiError> {
    let redeem = Command::Redeem { number: req.registration_number.map(Secret::from), coupon: req.coupon.into() };
    let now = app.clock.now();
    let Redeemed { license, seats_used, product } = app.execute_limited(ip, now, redeem).await?;
    Ok(json(StatusCode::OK, LicenseAnswer { license: LicenseObject::at(&license, seats_used, &product, now) }))
}

#[utoipa::path(post, path = "/v1/deactivate", request_body = HostRequest, responses((status = 200, description = "the seat is free", body = Empty), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)))]
async fn deactivate(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<HostRequest>,
) -> Result<Response, ApiError> {
    let command = Command::Deactivate(req.to_command()?);
    app.execute_limited::<()>(ip, app.clock.now(), command).await.map_err(|e| e.for_marker(req.token_format))?;
    Ok(json(StatusCode::OK, Empty {}))
}

#[utoipa::path(post, path = "/v1/recover", request_body = RecoverRequest, responses((status = 202, description = "accepted, known address or not", body = Empty), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)))]
async fn recover(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<RecoverRequest>,
) -> Result<Response, ApiError> {
    let command = Command::Recover { email: req.email.clone() };
    app.admit(ip, &command).await?;
    licet_core::email::normalize(&req.email)?;
    // The same answer, at once, whether or not the e-mail is known: the reminder is queued after
    // the answer (recovery changes nothing else; asking again is always safe), so the commit of
    // a queued mail cannot tell anyone which e-mails have accounts.
    let app = app.clone();
    tokio::spawn(async move {
        match app.execute::<()>(app.clock.now(), command).await {
            Ok(()) => app.mail_wake.notify_one(),
            Err(e) => tracing::error!(code = e.code.number(), "could not queue a recovery mail"),
        }
    });
    Ok(json(StatusCode::ACCEPTED, Empty {}))
}

#[utoipa::path(get, path = "/v1/account", responses((status = 200, description = "the account, number masked", body = AccountObject), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("customer" = [])))]
async fn account(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    bearer: Result<Bearer, ApiError>,
) -> Result<Response, ApiError> {
    let credential = app.bearer_credential(ip, bearer).await?;
    let now = app.clock.now();
    let found: AccountFound = app.execute_limited(ip, now, Command::Account { credential }).await?;
    Ok(json(StatusCode::OK, AccountObject::of(&found, false, now)))
}

#[utoipa::path(post, path = "/v1/bindings/{id}/reset", params(("id" = String, Path, description = "bnd_…")), responses((status = 200, description = "the seat is free", body = Empty), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("customer" = [])))]
async fn reset(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    id: Result<Path<String>, PathRejection>,
    bearer: Result<Bearer, ApiError>,
) -> Result<Response, ApiError> {
    let Path(binding_id) = id.map_err(|_| ApiError::invalid("malformed binding id"))?;
    let credential = app.bearer_credential(ip, bearer).await?;
    app.execute_limited::<()>(ip, app.clock.now(), Command::Reset { credential, binding_id }).await?;
    Ok(json(StatusCode::OK, Empty {}))
}

#[utoipa::path(get, path = "/v1/keys", responses((status = 200, description = "the signing keys", body = KeysAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)))]
async fn keys(State(app): State<AppState>) -> Response {
    json(StatusCode::OK, KeysAnswer { keys: app.keys.listing.clone() })
}

/// `ok` — or, on a node of a cluster whose database does not answer, 503 with 1099.
#[utoipa::path(get, path = "/v1/health", responses((status = 200, description = "serving", body = HealthAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)))]
async fn health(State(app): State<AppState>) -> Result<Response, ApiError> {
    match &app.database {
        Some(db) => db.ping().await?,
        None => {
            let store = app.store.clone();
            match tokio::task::spawn_blocking(move || store.health()).await {
                Ok(result) => result?,
                Err(_) => return Err(ApiError::new(Code::InternalError)),
            }
        }
    }
    Ok(json(StatusCode::OK, HealthAnswer { status: "ok".into() }))
}
