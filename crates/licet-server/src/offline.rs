//! Air-gapped activation (SPEC §8): `POST /v1/offline/activate` takes the one-line request an
//! air-gapped host's agent wrote and binds that host exactly as an activation does; the token
//! it answers with has the product's `offline_activation_days` as its lease.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use licet_core::{Command, OfflineRequest, Seat};
use licet_wire::{GrantAnswer, LicenseObject, OfflineActivateRequest};

use crate::app::{App, AppState, json};
use crate::error::ApiError;
use crate::extract::{ClientIp, JsonBody};

impl App {
    /// Binds the host of an air-gapped request and signs its token: the answer of the API and
    /// of the portal's page alike.
    pub(crate) async fn activate_offline(
        self: &std::sync::Arc<Self>,
        ip: std::net::IpAddr,
        now: DateTime<Utc>,
        request: &OfflineRequest,
    ) -> Result<GrantAnswer, ApiError> {
        let seat: Seat = self.execute_limited(ip, now, Command::Activate(request.to_command())).await?;
        Ok(GrantAnswer {
            license: LicenseObject::at(&seat.license, seat.seats_used, &seat.product, now),
            binding_id: seat.binding.id.clone(),
            token: self.keys.active.issue_offline(&seat, now),
        })
    }
}

/// `POST /v1/offline/activate {request}` → 200 `{license, binding_id, token}`.
#[utoipa::path(post, path = "/v1/offline/activate", request_body = OfflineActivateRequest, responses((status = 200, description = "the air-gapped host's token", body = GrantAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)))]
pub(crate) async fn activate(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    JsonBody(req): JsonBody<OfflineActivateRequest>,
) -> Result<Response, ApiError> {
    let request = OfflineRequest::decode(&req.request)?;
    let answer = app.activate_offline(ip, app.clock.now(), &request).await?;
    Ok(json(StatusCode::OK, answer))
}
