//! The server's HTTP surface in one place: the API and the portal, each with its own state (the
//! API's knows nothing of the portal), under one request log, one body limit and one answer for
//! an unknown route.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::StatusCode;
use axum::response::Response;

use crate::app::App;
use crate::error::{AnsweredCode, ApiError};
use crate::extract::MAX_BODY;
use crate::portal::Portal;

/// Every route of a node; `GET /metrics` too unless it has an address of its own.
pub(crate) fn router(app: Arc<App>, portal: Arc<Portal>, with_metrics: bool) -> Router {
    let mut router = Router::new();
    if with_metrics {
        router = router.merge(metrics_router());
    }
    router
        .merge(crate::app::routes(app))
        .merge(crate::portal::routes(portal))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(log_request))
}

/// `GET /metrics` alone (`serve --metrics-listen`).
pub(crate) fn metrics_router() -> Router {
    Router::new().route("/metrics", axum::routing::get(crate::metrics::render))
}

/// One log line per request — method, path (never the query or body), status, code, latency —
/// and its count and latency in the metrics, under the matched route.
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let start = Instant::now();
    let response = next.run(req).await;
    let code = response.extensions().get::<AnsweredCode>().map(|c| c.0.number());
    crate::metrics::request(&route, response.status().as_u16(), code, start.elapsed());
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
