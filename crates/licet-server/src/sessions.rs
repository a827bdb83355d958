//! The floating sessions of SPEC §11: `POST /v1/sessions` checks one out, a heartbeat keeps it
//! alive, `DELETE` releases it. Each is a ledger command made durable before it is answered — a
//! heartbeat too: the token it returns extends the lease, and a lease extension lost in a crash
//! would let another host take the seat while this token still works.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use licet_core::{Command, SessionSeat};
use licet_wire::{Empty, LicenseObject, SessionAnswer, SessionRequest, TokenRequest};

use crate::app::{AppState, Check, json};
use crate::error::ApiError;
use crate::extract::{Bearer, ClientIp, JsonBody, OptionalJsonBody};

/// The answer carrying a session's token (always this release's format: only agents that know
/// sessions ask for them).
fn answer(
    app: &AppState,
    seat: &SessionSeat,
    now: chrono::DateTime<chrono::Utc>,
    nonce: Option<[u8; 16]>,
) -> SessionAnswer {
    SessionAnswer {
        session_id: seat.session.id.clone(),
        token: app.keys.active.issue_session(seat, now, nonce),
        lease_until: seat.session.lease_until,
        license: LicenseObject::at(&seat.license, seat.sessions_live, &seat.product, now),
    }
}

fn session_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::invalid("malformed session id"))?;
    Ok(id)
}

/// `POST /v1/sessions` → 201 `{session_id, token, lease_until, license}`.
#[utoipa::path(post, path = "/v1/sessions", request_body = SessionRequest, responses((status = 201, description = "a live floating session", body = SessionAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)))]
pub(crate) async fn checkout(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<SessionRequest>,
) -> Result<Response, ApiError> {
    let now = app.clock.now();
    let command = Command::Checkout(req.to_checkout()?);
    let check = Check { number: &req.registration_number, product: &req.product, host: &req.host, nonce: req.nonce };
    let seat: SessionSeat = app.execute_limited(ip, now, command).await.map_err(|e| app.prove_check(e, check, now))?;
    Ok(json(StatusCode::CREATED, answer(&app, &seat, now, req.nonce.map(|n| n.0))))
}

/// `POST /v1/sessions/{id}/heartbeat` with the number as bearer → 200 (as a checkout's answer).
#[utoipa::path(post, path = "/v1/sessions/{id}/heartbeat", request_body = Option<TokenRequest>, params(("id" = String, Path, description = "ses_…")), responses((status = 200, description = "the session lives on", body = SessionAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("customer" = [])))]
pub(crate) async fn heartbeat(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    id: Result<Path<String>, PathRejection>,
    bearer: Result<Bearer, ApiError>,
    OptionalJsonBody(req): OptionalJsonBody<TokenRequest>,
) -> Result<Response, ApiError> {
    let session_id = session_id(id)?;
    let credential = app.bearer_credential(ip, bearer).await?;
    let now = app.clock.now();
    let seat: SessionSeat = app.execute_limited(ip, now, Command::Heartbeat { credential, session_id }).await?;
    Ok(json(StatusCode::OK, answer(&app, &seat, now, req.nonce.map(|n| n.0))))
}

/// `DELETE /v1/sessions/{id}` with the number as bearer → 200 `{}`.
#[utoipa::path(delete, path = "/v1/sessions/{id}", params(("id" = String, Path, description = "ses_…")), responses((status = 200, description = "the seat is free", body = Empty), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("customer" = [])))]
pub(crate) async fn release(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    id: Result<Path<String>, PathRejection>,
    bearer: Result<Bearer, ApiError>,
) -> Result<Response, ApiError> {
    let session_id = session_id(id)?;
    let credential = app.bearer_credential(ip, bearer).await?;
    app.execute_limited::<()>(ip, app.clock.now(), Command::Release { credential, session_id }).await?;
    Ok(json(StatusCode::OK, Empty {}))
}
