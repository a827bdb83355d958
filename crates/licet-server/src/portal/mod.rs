//! The customer portal (MIKO's "session monitor"): log in with a registration number or a
//! redeemed coupon, see licenses and license bindings to hosts, reset a binding. Plain HTML
//! forms and CSS served by the binary: no JavaScript, no CDN.

mod page;
mod session;
mod text;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use licet_core::{AccountFound, Code, Command};
use serde::Deserialize;

use crate::app::App;
pub(crate) use session::Sessions;
use session::{COOKIE as SESSION_COOKIE, LOGIN_COOKIE, random_token, same};
use text::{Lang, text};

type AppState = Arc<App>;

/// The portal's routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/reset/{id}", get(confirm_reset).post(reset))
        .route("/style.css", get(style))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

fn lang_of(headers: &HeaderMap, query: &LangQuery) -> Lang {
    query
        .lang
        .as_deref()
        .and_then(Lang::parse)
        .or_else(|| cookie(headers, "lang").and_then(Lang::parse))
        .unwrap_or_else(|| {
            Lang::from_accept_language(headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or(""))
        })
}

#[derive(Debug, Default, Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

/// An HTML answer with the portal's security headers.
fn html(status: StatusCode, body: String, cookies: &[String]) -> Response {
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
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(SET_COOKIE, v);
        }
    }
    response
}

fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
    response
}

impl App {
    fn cookie_attributes(&self) -> &'static str {
        if self.tls { "; Path=/; HttpOnly; SameSite=Strict; Secure" } else { "; Path=/; HttpOnly; SameSite=Strict" }
    }

    fn set_cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        let age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
        format!("{name}={value}{}{age}", self.cookie_attributes())
    }
}

/// The login page, with a fresh double-submit token for its form.
fn login_page(app: &App, lang: Lang, status: StatusCode, error: Option<&str>, mut cookies: Vec<String>) -> Response {
    let token = random_token();
    cookies.push(app.set_cookie(LOGIN_COOKIE, &token, Some(600)));
    html(status, page::login(lang, &token, error), &cookies)
}

async fn home(
    State(app): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<LangQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    let lang = lang_of(&headers, &query);
    let mut cookies = Vec::new();
    if let Some(l) = query.lang.as_deref().and_then(Lang::parse) {
        cookies.push(format!("lang={}; Path=/; SameSite=Strict; Max-Age=31536000", l.code()));
    }
    let session_id = cookie(&headers, SESSION_COOKIE).map(str::to_owned);
    let Some((id, session)) = session_id.and_then(|id| app.sessions.get(&id).map(|s| (id, s))) else {
        return login_page(&app, lang, StatusCode::OK, None, cookies);
    };
    let view = app.execute::<AccountFound>(app.clock.now(), account_of(&session.credential)).await;
    match view {
        Ok(AccountFound { account, number }) => {
            let flash = app.sessions.flash(&id, None);
            let masked = number.masked();
            html(StatusCode::OK, page::account(lang, &account, &masked, &session.csrf, flash.as_deref()), &cookies)
        }
        Err(_) => {
            app.sessions.close(&id);
            login_page(&app, lang, StatusCode::OK, None, cookies)
        }
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    credential: String,
    csrf: String,
}

async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = lang_of(&headers, &LangQuery::default());
    let t = text(lang);
    let Ok(Form(form)) = form else {
        return login_page(&app, lang, StatusCode::BAD_REQUEST, Some(t.forged), Vec::new());
    };
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same(c, &form.csrf)) {
        return login_page(&app, lang, StatusCode::FORBIDDEN, Some(t.forged), Vec::new());
    }
    let credential = form.credential.trim().to_owned();
    let result = app.execute_limited::<AccountFound>(peer.ip(), app.clock.now(), account_of(&credential)).await;
    match result {
        Ok(_) => {
            let id = app.sessions.open(credential);
            let clear_login = app.set_cookie(LOGIN_COOKIE, "", Some(0));
            redirect("/", &[app.set_cookie(SESSION_COOKIE, &id, None), clear_login])
        }
        Err(e) if e.code == Code::RateLimited => {
            let mut response = login_page(&app, lang, StatusCode::TOO_MANY_REQUESTS, Some(t.rate_limited), Vec::new());
            if let Some(wait) = e.retry_after {
                response.headers_mut().insert("retry-after", HeaderValue::from(wait));
            }
            response
        }
        Err(e) if e.code == Code::Unauthorized => {
            login_page(&app, lang, StatusCode::UNAUTHORIZED, Some(t.bad_credential), Vec::new())
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The session of a form post, if its CSRF token is the current one.
fn accept_form(
    app: &App,
    headers: &HeaderMap,
    form: &Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Option<String> {
    let id = cookie(headers, SESSION_COOKIE)?;
    let Ok(Form(form)) = form else { return None };
    app.sessions.accept(id, &form.csrf).map(|_| id.to_owned())
}

fn forged(lang: Lang) -> Response {
    html(StatusCode::FORBIDDEN, page::message(lang, text(lang).forged), &[])
}

async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = lang_of(&headers, &LangQuery::default());
    let Some(id) = accept_form(&app, &headers, &form) else { return forged(lang) };
    app.sessions.close(&id);
    redirect("/", &[app.set_cookie(SESSION_COOKIE, "", Some(0))])
}

async fn confirm_reset(
    State(app): State<AppState>,
    headers: HeaderMap,
    binding: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let lang = lang_of(&headers, &LangQuery::default());
    let Ok(Path(binding)) = binding else {
        return html(StatusCode::NOT_FOUND, page::message(lang, text(lang).not_found), &[]);
    };
    let session = cookie(&headers, SESSION_COOKIE).and_then(|id| app.sessions.get(id));
    let Some(session) = session else { return redirect("/", &[]) };
    let found = app.execute::<AccountFound>(app.clock.now(), account_of(&session.credential)).await;
    match found.map(|f| f.account.bindings.into_iter().find(|b| b.id == binding)) {
        Ok(Some(b)) => html(StatusCode::OK, page::confirm_reset(lang, &b, &session.csrf), &[]),
        _ => html(StatusCode::NOT_FOUND, page::message(lang, text(lang).not_found), &[]),
    }
}

async fn reset(
    State(app): State<AppState>,
    headers: HeaderMap,
    binding: Result<Path<String>, axum::extract::rejection::PathRejection>,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = lang_of(&headers, &LangQuery::default());
    let Ok(Path(binding)) = binding else {
        return html(StatusCode::NOT_FOUND, page::message(lang, text(lang).not_found), &[]);
    };
    let Some(id) = accept_form(&app, &headers, &form) else { return forged(lang) };
    let Some(session) = app.sessions.get(&id) else { return redirect("/", &[]) };
    let reset = Command::Reset { credential: session.credential.into(), binding_id: binding };
    let result = app.execute::<()>(app.clock.now(), reset).await;
    let t = text(lang);
    app.sessions.flash(&id, Some(if result.is_ok() { t.was_reset } else { t.not_found }.to_owned()));
    redirect("/", &[])
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
