//! The portal's "Offline activation" page (SPEC §8): a logged-in customer pastes the request an
//! air-gapped host's agent wrote and gets the token to carry back. The request must have been
//! made with this account's number (1002 otherwise); it binds the host as an activation does.

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use licet_core::{AccountFound, Code, OfflineRequest};
use serde::Deserialize;

use super::session::COOKIE as SESSION_COOKIE;
use super::text::text;
use super::{LangQuery, PortalState, account_of, forged, html, lang_of, page, redirect_home};
use crate::extract::ClientIp;

/// `GET /offline`: the form.
pub(super) async fn form(State(portal): State<PortalState>, headers: HeaderMap, jar: CookieJar) -> Response {
    let lang = lang_of(&headers, &jar, &LangQuery::default());
    let Some(id) = jar.get(SESSION_COOKIE) else { return redirect_home() };
    match portal.sessions.get(id.value()).await {
        Ok(Some(session)) => html(StatusCode::OK, page::offline(lang, &session.csrf, "", None, None)),
        Ok(None) => redirect_home(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct OfflineForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    request: String,
}

/// `POST /offline`: the token, or why not.
pub(super) async fn activate(
    State(portal): State<PortalState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<Form<OfflineForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let lang = lang_of(&headers, &jar, &LangQuery::default());
    let (Some(id), Ok(Form(form))) = (jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()), form) else {
        return forged(lang);
    };
    let session = match portal.sessions.accept(&id, &form.csrf).await {
        Ok(Some(session)) => session,
        Ok(None) => return forged(lang),
        Err(e) => return e.into_response(),
    };
    let t = text(lang);
    let refuse = |status: StatusCode, why: &str| {
        html(status, page::offline(lang, &session.csrf, &form.request, None, Some(why)))
    };
    let Ok(request) = OfflineRequest::decode(&form.request) else {
        return refuse(StatusCode::BAD_REQUEST, t.offline_damaged);
    };
    // The request's number must be this account's: the portal answers only for its own.
    let now = portal.app.clock.now();
    match portal.app.execute::<AccountFound>(now, account_of(request.number.expose())).await {
        Ok(theirs) if theirs.account.id == session.account() => {}
        Err(e) if e.code == Code::InternalError => return e.into_response(),
        _ => return refuse(StatusCode::BAD_REQUEST, t.offline_other_account),
    }
    match portal.app.activate_offline(ip, now, &request).await {
        Ok(answer) => html(StatusCode::OK, page::offline(lang, &session.csrf, "", Some(&answer.token), None)),
        Err(e) if e.code == Code::InternalError => e.into_response(),
        Err(e) if e.code == Code::NoFreeLicense => refuse(StatusCode::CONFLICT, t.offline_no_seat),
        Err(e) => {
            let status = crate::error::status_of(e.code);
            refuse(status, &format!("{} ({} {})", e.message, e.code.number(), e.code.name()))
        }
    }
}
