//! `GET /metrics` (SPEC §13): Prometheus text from the `metrics` facade and its exporter.
//!
//! What is measured, and where:
//! * `licet_http_requests_total{route,status,code}` and `licet_http_request_duration_seconds{route}`
//!   — every request, in the request log's middleware ([`crate::routes`]); `route` is the
//!   matched route's template (`/v1/sessions/{id}/heartbeat`), `code` the licet code of a refusal
//!   (`ok` for a success);
//! * `licet_store_commit_seconds{command}` — each ledger command, durable, in [`crate::app::App::execute`];
//! * `licet_database_commands_total{path}` — each ledger command on a cluster's database, by how
//!   it was decided ([`database_command`]); `licet_database_transactions_total` and
//!   `licet_database_batched_commands_total` — the transactions sent for commands decided over
//!   remembered records and how many commands they carried, at each upkeep;
//! * `licet_mail_queued`, `licet_mail_sent_total`, `licet_mail_failures_total` — the postman ([`crate::mail`]);
//! * `licet_accounts`, `licet_bindings`, `licet_sessions_live` — a census of the ledger taken
//!   by a background task every [`CENSUS_EVERY`] or, on a large ledger, after twenty times as
//!   long as the last census took, so that it costs at most 5 % of one core ([`census`]; on a
//!   cluster one query of the database); never by a scrape (a request must
//!   not be able to make the server read its whole ledger); every node of a cluster counts the
//!   same ledger.
//!
//! The recorder is process-wide: several servers in one process (tests, examples) share it.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use licet_core::{Error, Record, Table};
use licet_store::StoreExt;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::app::App;

/// How often the ledger's census is taken, at most.
pub(crate) const CENSUS_EVERY: Duration = Duration::from_secs(5);
/// How often the exporter's histograms are compacted (without it they grow until a scrape).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// Accounts read per transaction of the census.
const CENSUS_PAGE: usize = 200;

/// Latency buckets, in seconds: 100 µs to 10 s.
const BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's exporter, installed on first use; `None` when the program that embeds the
/// server installed its own recorder (its metrics then go there).
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(BUCKETS).ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "GET /metrics is off: another metrics recorder is installed");
                    None
                }
            }
        })
        .as_ref()
}

/// `GET /metrics`: renders what is recorded; does no work of its own.
pub(crate) async fn render() -> Response {
    match handle() {
        Some(handle) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "metrics go to the embedding program's recorder\n").into_response(),
    }
}

/// The node's metrics upkeep until `stop`: the exporter's every [`UPKEEP_EVERY`], the ledger's
/// census at start and then as the module says, one at a time.
pub(crate) async fn keep(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut next_census = Instant::now();
    loop {
        if let Some(handle) = handle() {
            handle.run_upkeep();
        }
        if let Some(db) = &app.database {
            let (transactions, commands) = db.batched();
            metrics::counter!("licet_database_transactions_total").absolute(transactions);
            metrics::counter!("licet_database_batched_commands_total").absolute(commands);
        }
        if Instant::now() >= next_census {
            let started = Instant::now();
            let counted = match app.database.clone() {
                // A cluster's database counts in one query.
                Some(db) => db.census(app.clock.now().timestamp()).await.map(|(accounts, bindings, sessions_live)| {
                    Census { accounts: accounts as u64, bindings: bindings as u64, sessions_live: sessions_live as u64 }
                }),
                None => {
                    let app = app.clone();
                    tokio::task::spawn_blocking(move || census(&app))
                        .await
                        .unwrap_or_else(|e| Err(Error::Internal(format!("the census did not finish: {e}"))))
                }
            };
            match counted {
                Ok(c) => {
                    metrics::gauge!("licet_accounts").set(c.accounts as f64);
                    metrics::gauge!("licet_bindings").set(c.bindings as f64);
                    metrics::gauge!("licet_sessions_live").set(c.sessions_live as f64);
                }
                Err(e) => tracing::warn!(error = %e, "the ledger's census for /metrics failed; trying again"),
            }
            next_census = Instant::now() + CENSUS_EVERY.max(started.elapsed() * 20);
        }
        tokio::select! {
            _ = tokio::time::sleep(UPKEEP_EVERY.min(next_census.saturating_duration_since(Instant::now()))) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Counts one answered request.
pub(crate) fn request(route: &str, status: u16, code: Option<u16>, elapsed: Duration) {
    let code = code.map_or_else(|| "ok".to_owned(), |c| c.to_string());
    let labels = [("route", route.to_owned()), ("status", status.to_string()), ("code", code)];
    metrics::counter!("licet_http_requests_total", &labels).increment(1);
    metrics::histogram!("licet_http_request_duration_seconds", "route" => route.to_owned()).record(elapsed);
}

/// Counts a command on a cluster's database by how it was decided: `remembered` on the
/// request's task over the records the node remembers, `transaction` on a blocking thread
/// (reading what the node did not remember, or what had changed).
pub(crate) fn database_command(path: &'static str) {
    metrics::counter!("licet_database_commands_total", "path" => path).increment(1);
}

/// Times one durable ledger command.
pub(crate) fn commit(command: &'static str, elapsed: Duration) {
    metrics::histogram!("licet_store_commit_seconds", "command" => command).record(elapsed);
}

/// What the census counted.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Census {
    accounts: u64,
    bindings: u64,
    sessions_live: u64,
}

/// Counts accounts, bindings and live floating sessions on the embedded store, a page of
/// accounts per transaction.
pub(crate) fn census(app: &App) -> Result<Census, Error> {
    let now = app.clock.now();
    let mut census = Census::default();
    app.store.for_each_record(Table::Account, CENSUS_PAGE, |record| {
        if let Record::Account(account) = record {
            census.accounts += 1;
            census.bindings += account.bindings.len() as u64;
            census.sessions_live += account.sessions.iter().filter(|s| s.is_live(now)).count() as u64;
        }
    })?;
    Ok(census)
}
