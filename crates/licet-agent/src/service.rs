//! The local agent service (SPEC §12, the seed's `mlworker`): one [`Agent`] kept in memory and
//! offered over HTTP on loopback to the programs of this machine that cannot link Rust — a 1C
//! configuration through `HTTPConnection`, scripts, other languages.
//!
//! `GET /v1/check?product=P[&feature=F…]` and `GET /v1/status` answer the command line's `--json`
//! objects (200 when ok, 403 refused, 400 malformed); the commands are POSTs with JSON bodies
//! named as the server's API names its fields. A floating license is held by the programs
//! using it, through checkout, heartbeat and release; a check of it answers from the cache. A
//! check of a host license answers from the in-memory verified token
//! (no disk, no network, no thread switch) while it is fresh; a background thread refreshes the host licenses'
//! tokens when they are due, so a check rarely waits for a server.
//!
//! Only loopback addresses are served, and only requests whose `Host` names this machine
//! (`localhost`, a loopback address), which a DNS name rebound to 127.0.0.1 does not. Requests
//! a browser makes for a web page (they carry `Origin` or `Sec-Fetch-Site`) are refused, and
//! commands must declare a JSON body, which a browser does not send across origins without
//! asking first (and the service never says yes). Any program of this machine may use the
//! service, as any program that can read the agent's data directory may use the command line
//! (docs/service.md, "Security").

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, RawQuery, Request as HttpRequest, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use licet_core::Code;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::agent::CheckNow;
use crate::request::{Answer, Request, grant_answer, refusal_json};
use crate::{Agent, Error, Grant, RegistrationForm};

/// The largest request body taken (the longest command, a registration, is far smaller).
const MAX_BODY: usize = 64 * 1024;
/// How often the background thread looks for tokens due for a refresh.
const REFRESH_EVERY: Duration = Duration::from_secs(60);
/// The least time between two refresh rounds.
const MIN_GAP: Duration = Duration::from_secs(10);

/// The local service, bound to its address and not yet serving.
#[derive(Debug)]
pub struct Service {
    agent: Arc<Agent>,
    listener: TcpListener,
    runtime: tokio::runtime::Runtime,
}

impl Service {
    /// Binds `listen` (`HOST:PORT`; port 0 picks a free one). Every address it names must be a
    /// loopback address: the service answers with the number's powers to anyone who can reach
    /// it, so it is never offered to the network (1001 otherwise).
    pub fn bind(agent: Arc<Agent>, listen: &str) -> Result<Service, Error> {
        let refuse = |reason: String| Error::Local(licet_core::Error::InvalidInput { field: "listen", reason });
        let addrs: Vec<SocketAddr> = listen.to_socket_addrs().map_err(|e| refuse(format!("{listen}: {e}")))?.collect();
        if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(refuse(format!("{listen} is not a loopback address: the service is for this machine only")));
        }
        let listener = TcpListener::bind(&addrs[..]).map_err(|e| refuse(format!("cannot listen on {listen}: {e}")))?;
        listener.set_nonblocking(true).map_err(|e| Error::Internal(format!("the listening socket: {e}")))?;
        // One thread serves every connection: a check answered from memory takes about a
        // microsecond, and anything that may block (a server asked, the disk written) goes to
        // the runtime's blocking threads.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .thread_name("licet-service")
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("the service's runtime: {e}")))?;
        Ok(Service { agent, listener, runtime })
    }

    /// The address bound (with the real port).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(|e| Error::Internal(format!("the listening socket: {e}")))
    }

    /// A future that completes on SIGTERM or Ctrl-C, its handlers installed now (on Unix) —
    /// before the caller says it is listening, so that a supervisor's SIGTERM right after is
    /// never fatal. The handlers are the process's from then on: call it only in a program
    /// whose way of stopping is this service's.
    pub fn signals(&self) -> Result<impl Future<Output = ()> + Send + 'static, Error> {
        let _entered = self.runtime.enter();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let install = |kind| signal(kind).map_err(|e| Error::Internal(format!("signal handler: {e}")));
            let (mut term, mut interrupt) = (install(SignalKind::terminate())?, install(SignalKind::interrupt())?);
            Ok(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            })
        }
        #[cfg(not(unix))]
        {
            Ok(async {
                // No handler, no stop: Ctrl-C then ends the process as it would have anyway.
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            })
        }
    }

    /// Serves until `shutdown` completes, then gives requests in flight [`SHUTDOWN_GRACE`] to
    /// finish. Blocks the calling thread: the service runs its own small runtime, so call it
    /// from a thread of its own, not from inside an async runtime (that would panic).
    pub fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let internal = |what: &str, e: std::io::Error| Error::Internal(format!("{what}: {e}"));
        let (wake, woken) = mpsc::channel::<Wake>();
        let refresher = {
            let agent = self.agent.clone();
            std::thread::Builder::new()
                .name("licet-refresh".into())
                .spawn(move || refresh_until(&agent, &woken))
                .map_err(|e| internal("the refresh thread", e))?
        };
        let stop = wake.clone();
        let app = router(Arc::new(Shared { agent: self.agent, wake }));
        let listener = self.listener;
        let served = self.runtime.block_on(async move {
            use axum::serve::ListenerExt;
            // Answers are small and each is written at once: no waiting to fill a segment.
            let listener = tokio::net::TcpListener::from_std(listener)?.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let (stopping, mut told) = tokio::sync::watch::channel(false);
            let graceful = async move {
                shutdown.await;
                let _ = stop.send(Wake::Stop);
                let _ = stopping.send(true);
            };
            // A client that never finishes its request must not hold the service up for ever.
            let deadline = async move {
                let _ = told.wait_for(|stopping| *stopping).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            tokio::select! {
                served = axum::serve(listener, app).with_graceful_shutdown(graceful) => served,
                () = deadline => Ok(()),
            }
        });
        // The grace is over: commands still running on blocking threads (each bounded by the
        // agent's own timeouts) are not waited for.
        self.runtime.shutdown_timeout(Duration::from_millis(100));
        // A refresh under way asks a server for at most a few seconds more: not waited for.
        if refresher.is_finished() {
            let _ = refresher.join();
        }
        served.map_err(|e| internal("serving", e))
    }
}

/// How long requests in flight may take to finish once the service is told to stop.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `agent` on `listen` until SIGTERM or Ctrl-C, printing `listening on http://HOST:PORT`
/// first (SPEC §12).
pub(crate) fn serve(agent: Arc<Agent>, listen: &str) -> Result<(), Error> {
    let service = Service::bind(agent, listen)?;
    let addr = service.local_addr()?;
    let signals = service.signals()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}").and_then(|()| out.flush());
    }
    tracing::info!("licet-agent serving on http://{addr}");
    service.run(signals)?;
    tracing::info!("stopped");
    Ok(())
}

/// What the refresh thread is told.
enum Wake {
    /// A check found a token due: refresh now.
    Refresh,
    /// The service is stopping.
    Stop,
}

/// What the service's handlers share.
struct Shared {
    agent: Arc<Agent>,
    /// Wakes the refresh thread.
    wake: mpsc::Sender<Wake>,
}

/// The background refresh: every [`REFRESH_EVERY`], and when a check found a token due, a check
/// of each cached host license, which asks a server only when its token is due (SPEC §3).
/// Floating sessions are left to their holders' heartbeats: refreshing them here would keep a
/// seat whose user has gone.
fn refresh_until(agent: &Agent, woken: &mpsc::Receiver<Wake>) {
    let mut last_round = Instant::now();
    loop {
        match woken.recv_timeout(REFRESH_EVERY) {
            Ok(Wake::Refresh) | Err(RecvTimeoutError::Timeout) => {}
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
        }
        // At most one round per MIN_GAP, however many checks find a token due (a clock ahead
        // of the server's finds every fresh token due at once).
        while let Some(rest) = MIN_GAP.checked_sub(last_round.elapsed()).filter(|r| !r.is_zero()) {
            if let Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) = woken.recv_timeout(rest) {
                return;
            }
        }
        last_round = Instant::now();
        // The checks that asked meanwhile are answered by this round.
        while let Ok(wake) = woken.try_recv() {
            if matches!(wake, Wake::Stop) {
                return;
            }
        }
        let Ok(products) = agent.state().map(|st| st.policy.products().map(str::to_owned).collect::<Vec<_>>()) else {
            continue;
        };
        for product in products {
            // Each check asks a server only if its token is due, and leaves sessions alone.
            let _ = agent.check_with(&product, &[], false);
            if matches!(woken.try_recv(), Ok(Wake::Stop)) {
                return;
            }
        }
        if let Some(warning) = agent.take_warning() {
            tracing::warn!("{warning}");
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/check", get(check))
        .route("/v1/status", get(status))
        .route("/v1/set-number", post(set_number))
        .route("/v1/register", post(register))
        .route("/v1/trial", post(trial))
        .route("/v1/redeem", post(redeem))
        .route("/v1/deactivate", post(deactivate))
        .route("/v1/checkout", post(checkout))
        .route("/v1/heartbeat", post(heartbeat))
        .route("/v1/release", post(release))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(this_machine_only))
        .layer(middleware::from_fn(log_request))
        .with_state(shared)
}

/// The code an answer carries, for the request's log line.
#[derive(Clone, Copy)]
struct Answered(Option<Code>);

/// One log line per request: method, the route (with the product and features of a check;
/// nothing else a client put in the URL, nor any body: no credential reaches the log), status,
/// code, time taken.
async fn log_request(request: HttpRequest, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let mut target = match request.extensions().get::<MatchedPath>() {
        Some(route) => route.as_str().to_owned(),
        None => "(no such route)".to_owned(),
    };
    if target == "/v1/check" {
        let (product, features) = check_query(request.uri().query());
        // Quoted and escaped: a line break in a query cannot forge a log line.
        target.push_str(&format!(" product={:?}", product.as_deref().unwrap_or("")));
        for feature in features {
            target.push_str(&format!(" feature={feature:?}"));
        }
    }
    let response = next.run(request).await;
    let code = response.extensions().get::<Answered>().and_then(|a| a.0).map_or(0, Code::number);
    let micros = started.elapsed().as_micros();
    tracing::info!("{method} {target} {} code={code} {micros}µs", response.status().as_u16());
    response
}

/// Whether `host` (a `Host` header) names this machine: `localhost` or a loopback address,
/// with any port.
fn names_this_machine(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((name, "")) => name,
            Some((name, port)) if port.strip_prefix(':').is_some_and(|p| p.parse::<u16>().is_ok()) => name,
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, port)| match port.parse::<u16>() {
            Ok(_) => name,
            Err(_) => host,
        }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn this_machine_only(request: HttpRequest, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !names_this_machine(host) {
        let why = "the Host header must name this machine (localhost or a loopback address)";
        return refused(StatusCode::FORBIDDEN, &malformed("host", why));
    }
    if from_a_web_page(request.headers()) {
        let why = "requests from web pages are refused: the service is for programs on this machine";
        return refused(StatusCode::FORBIDDEN, &malformed("origin", why));
    }
    if request.method() == Method::POST && !declares_json(request.headers()) {
        return refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, &malformed("body", "send Content-Type: application/json"));
    }
    next.run(request).await
}

/// Whether a browser sent the request on a web page's behalf: browsers name the page's origin
/// (`Origin`) or say where the request came from (`Sec-Fetch-Site`) — even for an image or a
/// form; the programs the service is for (a 1C platform, curl, scripts) send neither.
fn from_a_web_page(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    headers.contains_key(header::ORIGIN) || site.is_some_and(|s| s != b"none")
}

fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

fn malformed(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Local(licet_core::Error::InvalidInput { field, reason: reason.into() })
}

fn json_response(status: StatusCode, body: &Value, code: Option<Code>) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.extensions_mut().insert(Answered(code));
    response
}

fn refused(status: StatusCode, e: &Error) -> Response {
    json_response(status, &refusal_json(e), Some(e.code()))
}

/// Carries out `request` on a blocking thread (a server asked, the disk written) and answers:
/// 200 with the answer, 400 for a malformed request, 500 when the agent itself failed (its
/// disk), 403 for every refusal.
/// Runs `job` on a blocking thread and answers what it says.
async fn blocking(shared: &Shared, job: impl FnOnce(&Agent) -> Result<Answer, Error> + Send + 'static) -> Response {
    let agent = shared.agent.clone();
    let outcome = tokio::task::spawn_blocking(move || job(&agent))
        .await
        .unwrap_or_else(|e| Err(Error::Internal(format!("the command failed: {e}"))));
    respond(outcome)
}

fn respond(outcome: Result<Answer, Error>) -> Response {
    match outcome {
        Ok(answer) => json_response(StatusCode::OK, &answer.json(), None),
        Err(e) => {
            let status = match e.code() {
                Code::InvalidRequest => StatusCode::BAD_REQUEST,
                Code::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::FORBIDDEN,
            };
            refused(status, &e)
        }
    }
}

/// A check: answered at once from memory when it can be — a token due for a refresh answers
/// too, and the refresh thread is woken — else on a blocking thread. A floating session's token
/// is judged as it is: the programs holding sessions heartbeat them, and a check never
/// heartbeats one (it may be another user's whose program has gone) nor checks one out.
async fn check_answer(shared: &Shared, product: String, features: Vec<String>) -> Response {
    let grant = match settled(shared.agent.check_now(&product, &features, false), &shared.wake) {
        Some(grant) => grant,
        None => {
            let (agent, wake) = (shared.agent.clone(), shared.wake.clone());
            tokio::task::spawn_blocking(move || {
                settled(agent.check_now(&product, &features, true), &wake).unwrap_or_else(|| {
                    let features: Vec<&str> = features.iter().map(String::as_str).collect();
                    agent.check_with(&product, &features, false)
                })
            })
            .await
            .unwrap_or_else(|e| Err(Error::Internal(format!("the check failed: {e}"))))
        }
    };
    respond(grant.map(|g| grant_answer(&g)))
}

/// The answer [`Agent::check_now`] gave, the refresh thread woken for a token due; `None` when a
/// server must be asked (or, on the service's thread, a lock or the disk awaited).
fn settled(now: CheckNow, wake: &mpsc::Sender<Wake>) -> Option<Result<Grant, Error>> {
    match now {
        CheckNow::Answer(result) => Some(result),
        CheckNow::Due(grant) => {
            let _ = wake.send(Wake::Refresh);
            Some(Ok(grant))
        }
        CheckNow::Wait => None,
    }
}

/// The product and features of a check's query string.
fn check_query(query: Option<&str>) -> (Option<String>, Vec<String>) {
    let (mut product, mut features) = (None, Vec::new());
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*name {
            "product" => product = Some(value.into_owned()),
            "feature" => features.push(value.into_owned()),
            _ => {}
        }
    }
    (product.filter(|p| !p.is_empty()), features)
}

async fn check(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let (product, features) = check_query(query.as_deref());
    match product {
        Some(product) => check_answer(&shared, product, features).await,
        None => refused(StatusCode::BAD_REQUEST, &malformed("product", "give ?product=…")),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> Response {
    blocking(&shared, |agent| agent.perform(Request::Status)).await
}

async fn method_not_allowed() -> Response {
    refused(StatusCode::METHOD_NOT_ALLOWED, &malformed("method", "GET for check and status, POST for the commands"))
}

async fn not_found() -> Response {
    refused(StatusCode::NOT_FOUND, &malformed("path", "no such endpoint: see GET /v1/check and GET /v1/status"))
}

/// A request's body, or why it could not be read (larger than 64 KiB: 413).
type Body = Result<Bytes, BytesRejection>;

/// Answers a command whose JSON body is read as `T` and turned into a request by `make`; a body
/// that cannot be read is 1001 (400, or 413 when larger than 64 KiB).
async fn command<T: DeserializeOwned + Send + 'static>(
    shared: &Shared,
    bytes: Body,
    job: impl FnOnce(T, &Agent) -> Result<Answer, Error> + Send + 'static,
) -> Response {
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(e) => return refused(e.status(), &malformed("body", e.body_text())),
    };
    match serde_json::from_slice::<T>(&bytes) {
        Ok(fields) => blocking(shared, move |agent| job(fields, agent)).await,
        Err(e) => refused(StatusCode::BAD_REQUEST, &malformed("body", e.to_string())),
    }
}

#[derive(Deserialize)]
struct NumberBody {
    registration_number: String,
    #[serde(default)]
    offline: bool,
}

#[derive(Deserialize)]
struct RegisterBody {
    email: String,
    organization: String,
    contact: Option<String>,
    phone: Option<String>,
    product: String,
    #[serde(default)]
    lang: Option<licet_core::Lang>,
}

#[derive(Deserialize)]
struct ProductBody {
    product: String,
}

#[derive(Deserialize)]
struct CouponBody {
    coupon: String,
}

#[derive(Deserialize)]
struct CheckoutBody {
    product: String,
    borrow_hours: Option<u32>,
    user: Option<String>,
}

#[derive(Deserialize)]
struct SessionBody {
    session_id: String,
}

async fn set_number(State(shared): State<Arc<Shared>>, bytes: Body) -> Response {
    command(&shared, bytes, |b: NumberBody, agent| {
        agent.perform(Request::SetNumber { number: b.registration_number, offline: b.offline })
    })
    .await
}

async fn register(State(shared): State<Arc<Shared>>, bytes: Body) -> Response {
    command(&shared, bytes, |b: RegisterBody, agent| {
        let RegisterBody { email, organization, contact, phone, product, lang } = b;
        agent.perform(Request::Register(RegistrationForm { email, organization, contact, phone, product, lang }))
    })
    .await
}

async fn trial(State(shared): State<Arc<Shared>>, bytes: Body) -> Response {
    command(&shared, bytes, |b: ProductBody, agent| agent.perform(Request::Trial { product: b.product })).await
}

async fn redeem(State(shared): State<Arc<Shared>>, bytes: Body) -> Response {
    command(&shared, bytes, |b: CouponBody, agent| agent.perform(Request::Redeem { coupon: b.coupon })).await
}

async fn deactivate(State(shared): State<Arc<Shared>>, bytes: Body) -> Response {
    command(&shared, bytes, |b: ProductBody, agent| agent.perform(Request::Deactivate { product: b.product })).await
}

async fn checkout(State(shared): State<Arc<Shared>>, bytes: Body) -> Response {
    command(&shared, bytes, |b: CheckoutBody, agent| {
        agent.perform(Request::Checkout { product: b.product, borrow_hours: b.borrow_hours, user: b.user })
    })
    .await
}

async fn heartbeat(State(shared): State<Arc<Shared>>, bytes: Body) -> Response {
    command(&shared, bytes, |b: SessionBody, agent| agent.perform(Request::Heartbeat { session: b.session_id })).await
}

/// Releases a session this service holds (another id, even of the account, is 1055: a program of
/// this machine ends its own users' sessions, not other hosts').
async fn release(State(shared): State<Arc<Shared>>, bytes: Body) -> Response {
    command(&shared, bytes, |b: SessionBody, agent| match agent.holds_session(&b.session_id) {
        true => agent.perform(Request::Release { session: b.session_id }),
        false => Err(Error::Local(licet_core::Error::Refused(Code::SessionExpired))),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::names_this_machine;

    #[test]
    fn only_this_machines_names_pass_as_host() {
        for host in ["localhost", "LOCALHOST:8730", "127.0.0.1", "127.0.0.1:8730", "127.8.9.1:1", "[::1]", "[::1]:8730"]
        {
            assert!(names_this_machine(host), "{host}");
        }
        for host in ["", "example.com", "evil.localhost.example.com:8730", "10.0.0.1:8730", "[2001:db8::1]:80", "::1x"]
        {
            assert!(!names_this_machine(host), "{host}");
        }
    }
}
