//! The customer portal (MIKO's "session monitor"): log in with a registration number or a
//! redeemed coupon, see licenses, live floating sessions and license bindings to hosts; release
//! a session, reset a binding. Plain HTML
//! forms and CSS served by the binary: no JavaScript, no CDN.

mod offline;
mod page;
mod session;
mod text;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use cookie::time::Duration;
use licet_core::{AccountFound, Code, Command};
use serde::Deserialize;

use crate::app::App;
use crate::extract::ClientIp;
use session::{COOKIE as SESSION_COOKIE, LOGIN_COOKIE, random_token, same};
pub(crate) use session::{LocalSessions, Sessions};

/// The cookie that remembers the chosen language.
const LANG_COOKIE: &str = "lang";
use text::{Lang, text};

/// What the portal's handlers need: the API's state, whose commands they run, and what only
/// the portal has — its sessions, and whether its cookies must be `Secure`.
pub(crate) struct Portal {
    /// The server's state and commands.
    pub(crate) app: Arc<App>,
    /// Portal sessions (this process's, or the cluster's database's).
    pub(crate) sessions: Sessions,
    /// Whether the server speaks TLS (cookies are then `Secure`).
    pub(crate) tls: bool,
}

type PortalState = Arc<Portal>;

impl crate::extract::ProxyAware for PortalState {
    fn trusted_proxies(&self) -> &[ipnet::IpNet] {
        &self.app.trusted_proxies
    }
}

/// The portal's routes, with their state.
pub(crate) fn routes(portal: PortalState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/reset/{id}", get(confirm_reset).post(reset))
        .route("/release/{id}", post(release))
        .route("/offline", get(offline::form).post(offline::activate))
        .route("/style.css", get(style))
        .with_state(portal)
}

fn lang_of(headers: &HeaderMap, jar: &CookieJar, query: &LangQuery) -> Lang {
    query
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .or_else(|| jar.get(LANG_COOKIE).and_then(|c| Lang::parse(c.value())))
        .unwrap_or_else(|| {
            text::from_accept_language(headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or(""))
        })
}

#[derive(Debug, Default, Deserialize)]
struct LangQuery {
    lang: Option<String>,
    /// The session monitor's tab: `sessions`, or `bindings` (the default).
    tab: Option<String>,
}

/// An HTML answer with the portal's security headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn redirect_home() -> Response {
    redirect_to("/")
}

fn redirect_to(path: &'static str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, HeaderValue::from_static(path))]).into_response()
}

impl Portal {
    /// A portal cookie: `HttpOnly`, `SameSite=Strict`, and `Secure` behind TLS.
    fn cookie(&self, name: &'static str, value: String, max_age: Option<Duration>) -> Cookie<'static> {
        let mut cookie =
            Cookie::build((name, value)).path("/").http_only(true).same_site(SameSite::Strict).secure(self.tls);
        if let Some(age) = max_age {
            cookie = cookie.max_age(age);
        }
        cookie.build()
    }

    /// The removal of a portal cookie.
    fn expired(&self, name: &'static str) -> Cookie<'static> {
        self.cookie(name, String::new(), Some(Duration::ZERO))
    }
}

/// The login page, with a fresh double-submit token for its form.
fn login_page(portal: &Portal, jar: CookieJar, lang: Lang, status: StatusCode, error: Option<&str>) -> Response {
    let token = random_token();
    let jar = jar.add(portal.cookie(LOGIN_COOKIE, token.clone(), Some(Duration::minutes(10))));
    (jar, html(status, page::login(lang, &token, error))).into_response()
}

async fn home(
    State(portal): State<PortalState>,
    headers: HeaderMap,
    mut jar: CookieJar,
    query: Result<Query<LangQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    let lang = lang_of(&headers, &jar, &query);
    if let Some(l) = query.lang.as_deref().and_then(Lang::parse) {
        let cookie =
            Cookie::build((LANG_COOKIE, l.as_str())).path("/").same_site(SameSite::Strict).max_age(Duration::days(365));
        jar = jar.add(cookie.build());
    }
    let Some(id) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
        return login_page(&portal, jar, lang, StatusCode::OK, None);
    };
    let session = match portal.sessions.get(&id).await {
        Ok(Some(session)) => session,
        Ok(None) => return login_page(&portal, jar, lang, StatusCode::OK, None),
        Err(e) => return e.into_response(),
    };
    let view = portal.app.execute::<AccountFound>(portal.app.clock.now(), account_of(&session.credential)).await;
    match view {
        Ok(found) => {
            let flash = match portal.sessions.flash(&id, None).await {
                Ok(flash) => flash,
                Err(e) => return e.into_response(),
            };
            let tab = match query.tab.as_deref() {
                Some("sessions") => page::Tab::Sessions,
                _ => page::Tab::Bindings,
            };
            let page = page::account(lang, &found, portal.app.clock.now(), &session.csrf, flash.as_deref(), tab);
            (jar, html(StatusCode::OK, page)).into_response()
        }
        Err(e) if e.code == Code::InternalError => e.into_response(),
        Err(_) => match portal.sessions.close(&id).await {
            Ok(()) => login_page(&portal, jar, lang, StatusCode::OK, None),
            Err(e) => e.into_response(),
        },
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    credential: String,
    csrf: String,
}

async fn login(
    State(portal): State<PortalState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = lang_of(&headers, &jar, &LangQuery::default());
    let t = text(lang);
    let Ok(Form(form)) = form else {
        return login_page(&portal, jar, lang, StatusCode::BAD_REQUEST, Some(t.forged));
    };
    if !jar.get(LOGIN_COOKIE).is_some_and(|c| same(c.value(), &form.csrf)) {
        return login_page(&portal, jar, lang, StatusCode::FORBIDDEN, Some(t.forged));
    }
    let credential = form.credential.trim().to_owned();
    let result = portal.app.execute_limited::<AccountFound>(ip, portal.app.clock.now(), account_of(&credential)).await;
    match result {
        Ok(found) => {
            let id = match portal.sessions.open(&found.account.id, credential).await {
                Ok(id) => id,
                Err(e) => return e.into_response(),
            };
            let jar = jar.add(portal.cookie(SESSION_COOKIE, id, None)).add(portal.expired(LOGIN_COOKIE));
            (jar, redirect_home()).into_response()
        }
        Err(e) if e.code == Code::RateLimited => {
            let mut response = login_page(&portal, jar, lang, StatusCode::TOO_MANY_REQUESTS, Some(t.rate_limited));
            if let Some(wait) = e.retry_after {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(wait));
            }
            response
        }
        Err(e) if e.code == Code::Unauthorized => {
            login_page(&portal, jar, lang, StatusCode::UNAUTHORIZED, Some(t.bad_credential))
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The session of a form post if its CSRF token is the current one; else the answer to give.
async fn accept_form(
    portal: &Portal,
    jar: &CookieJar,
    form: &Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
    lang: Lang,
) -> Result<(String, session::Session), Response> {
    let (Some(id), Ok(Form(form))) = (jar.get(SESSION_COOKIE).map(|c| c.value()), form) else {
        return Err(forged(lang));
    };
    match portal.sessions.accept(id, &form.csrf).await {
        Ok(Some(session)) => Ok((id.to_owned(), session)),
        Ok(None) => Err(forged(lang)),
        Err(e) => Err(e.into_response()),
    }
}

fn forged(lang: Lang) -> Response {
    html(StatusCode::FORBIDDEN, page::message(lang, text(lang).forged))
}

fn not_found(lang: Lang) -> Response {
    html(StatusCode::NOT_FOUND, page::message(lang, text(lang).not_found))
}

async fn logout(
    State(portal): State<PortalState>,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = lang_of(&headers, &jar, &LangQuery::default());
    let (id, _) = match accept_form(&portal, &jar, &form, lang).await {
        Ok(accepted) => accepted,
        Err(answer) => return answer,
    };
    if let Err(e) = portal.sessions.close(&id).await {
        return e.into_response();
    }
    (jar.add(portal.expired(SESSION_COOKIE)), redirect_home()).into_response()
}

async fn confirm_reset(
    State(portal): State<PortalState>,
    headers: HeaderMap,
    jar: CookieJar,
    binding: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let lang = lang_of(&headers, &jar, &LangQuery::default());
    let Ok(Path(binding)) = binding else { return not_found(lang) };
    let Some(id) = jar.get(SESSION_COOKIE) else { return redirect_home() };
    let session = match portal.sessions.get(id.value()).await {
        Ok(Some(session)) => session,
        Ok(None) => return redirect_home(),
        Err(e) => return e.into_response(),
    };
    let found = portal.app.execute::<AccountFound>(portal.app.clock.now(), account_of(&session.credential)).await;
    let found = match found {
        Ok(found) => found,
        Err(_) => return not_found(lang),
    };
    match found.account.bindings.iter().find(|b| b.id == binding) {
        Some(b) => html(StatusCode::OK, page::confirm_reset(lang, b, &found, &session.csrf)),
        None => not_found(lang),
    }
}

async fn reset(
    State(portal): State<PortalState>,
    headers: HeaderMap,
    jar: CookieJar,
    binding: Result<Path<String>, axum::extract::rejection::PathRejection>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = lang_of(&headers, &jar, &LangQuery::default());
    let Ok(Path(binding)) = binding else { return not_found(lang) };
    let (id, session) = match accept_form(&portal, &jar, &form, lang).await {
        Ok(accepted) => accepted,
        Err(answer) => return answer,
    };
    let reset = Command::Reset { credential: session.credential.into(), binding_id: binding };
    let result = portal.app.execute::<()>(portal.app.clock.now(), reset).await;
    let t = text(lang);
    let flash = match result {
        Ok(()) => t.was_reset,
        Err(e) if e.code == Code::InternalError => return e.into_response(),
        Err(e) if e.code == Code::ResetLimitReached => t.reset_limit_reached,
        Err(_) => t.not_found,
    };
    let flash = Some(flash.to_owned());
    match portal.sessions.flash(&id, flash).await {
        Ok(_) => redirect_home(),
        Err(e) => e.into_response(),
    }
}

/// The Release button of the session monitor: ends a live floating session of the account,
/// freeing its seat at once (as `DELETE /v1/sessions/{id}`).
async fn release(
    State(portal): State<PortalState>,
    headers: HeaderMap,
    jar: CookieJar,
    session_id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = lang_of(&headers, &jar, &LangQuery::default());
    let Ok(Path(session_id)) = session_id else { return not_found(lang) };
    let (id, session) = match accept_form(&portal, &jar, &form, lang).await {
        Ok(accepted) => accepted,
        Err(answer) => return answer,
    };
    let release = Command::Release { credential: session.credential.into(), session_id };
    let t = text(lang);
    let flash = match portal.app.execute::<()>(portal.app.clock.now(), release).await {
        Ok(()) => t.was_released,
        Err(e) if e.code == Code::InternalError => return e.into_response(),
        Err(_) => t.session_not_found,
    };
    match portal.sessions.flash(&id, Some(flash.to_owned())).await {
        Ok(_) => redirect_to("/?tab=sessions"),
        Err(e) => e.into_response(),
    }
}

/// The command that reads the account a portal session was opened with.
fn account_of(credential: &str) -> Command {
    Command::Account { credential: credential.into() }
}

async fn style() -> Response {
    let mut response = include_str!("style.css").into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    response
}
