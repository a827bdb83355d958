//! `licet-server admin`: the vendor's daily work without curl. Each subcommand becomes an
//! [`AdminRequest`], sent to a running server's admin endpoints (`--server`, with the admin
//! token) or carried out on a stopped server's data directory or database ([`perform`]); both
//! give the same JSON (`--json`) or the same readable lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use licet_core::{CouponKind, LicenseModel, ProductSettings};
use licet_wire::{CouponsRequest, GrantRequest};
use serde_json::Value;

use crate::admin::{AdminAnswer, AdminRequest, perform};

/// Where the admin commands go, and how they print. Its `Debug` leaves out the token and the
/// database URL.
#[derive(Args)]
pub(crate) struct Target {
    /// A running server (`https://lic.example.com`); without it the commands open the data
    /// directory (or `--database`) of a stopped server.
    #[arg(long, env = "LICET_SERVER_URL", global = true)]
    server: Option<String>,
    /// The admin token, for `--server` (better in `LICET_ADMIN_TOKEN` than on the command line).
    #[arg(long, env = "LICET_ADMIN_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// The stopped server's data directory.
    #[arg(long, env = "LICET_DATA_DIR", default_value = "licet-data", global = true)]
    data_dir: PathBuf,
    /// The stopped cluster's database (`postgres://…`), with `--data-dir` from `init --database`.
    #[arg(long, env = "LICET_DATABASE_URL", hide_env_values = true, global = true)]
    database: Option<String>,
    /// Print the answer's JSON.
    #[arg(long, global = true)]
    json: bool,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("server", &self.server)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database.as_ref().map(|_| "<set>"))
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

/// Whether the admin token may be sent to `server`: over https, or to this machine.
fn safe_for_the_token(server: &str) -> bool {
    if server.starts_with("https://") {
        return true;
    }
    let Some(rest) = server.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    matches!(host, "localhost" | "[::1]") || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// What to administer.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Products: list, create or change.
    #[command(subcommand)]
    Products(ProductsCommand),
    /// Coupons: issue, list.
    #[command(subcommand)]
    Coupons(CouponsCommand),
    /// Accounts: find by e-mail, show by id.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// An account's licenses: grant, revoke, extend.
    #[command(subcommand)]
    Licenses(LicensesCommand),
    /// An account's bindings (hosts holding seats): list, reset.
    #[command(subcommand)]
    Bindings(BindingsCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProductsCommand {
    /// Every product with its settings.
    List,
    /// Creates a product or changes its settings.
    Put {
        /// The product's id (slug).
        id: String,
        /// Its display name.
        #[arg(long)]
        name: Option<String>,
        /// Settings as the HTTP API's JSON (`{"trial_days":30,"features":["rec"]}`); `--name` wins.
        #[arg(long, default_value = "{}")]
        settings: String,
    },
}

/// What a coupon or a grant makes (the HTTP API's offer fields).
#[derive(Debug, Args)]
pub(crate) struct OfferArgs {
    /// `license` (a new license), `extend`, `seats` or `upgrade`.
    #[arg(long, default_value = "license", value_parser = parse_kind)]
    kind: CouponKind,
    /// `license`: its seats; `seats`: seats added.
    #[arg(long)]
    seats: Option<u32>,
    /// `license`: its term in days (absent: perpetual).
    #[arg(long)]
    term_days: Option<u32>,
    /// `extend`: days added.
    #[arg(long)]
    days: Option<u32>,
    /// `license`: its features (absent: all); `upgrade`: features added. Comma-separated.
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// `license`: `host` or `floating`.
    #[arg(long, value_parser = parse_model)]
    model: Option<LicenseModel>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CouponsCommand {
    /// Issues coupons; prints their codes.
    Issue {
        /// The product.
        #[arg(long)]
        product: String,
        /// How many (1–10000).
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[command(flatten)]
        offer: OfferArgs,
    },
    /// Lists coupons, with who redeemed them.
    List {
        /// Only this product's.
        #[arg(long)]
        product: Option<String>,
        /// Continue after this code (the previous page's last).
        #[arg(long)]
        after: Option<String>,
        /// At most this many (1–1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccountsCommand {
    /// The account registered with an e-mail.
    Find {
        #[arg(long)]
        email: String,
    },
    /// An account by id (`acc_…`).
    Show { account: String },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LicensesCommand {
    /// Grants a license (or, with `--kind`, extends, adds seats or features) without a coupon.
    Grant {
        /// The account (`acc_…`).
        account: String,
        /// The product.
        #[arg(long)]
        product: String,
        #[command(flatten)]
        offer: OfferArgs,
    },
    /// Revokes a license: it grants nothing from now, and its seats and sessions are freed.
    Revoke { account: String, license: String },
    /// Adds days to a trial's or subscription's term.
    Extend {
        account: String,
        license: String,
        #[arg(long)]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BindingsCommand {
    /// The hosts holding the account's seats.
    List { account: String },
    /// Frees a seat (not counted against the license's resets).
    Reset { account: String, binding: String },
}

fn parse_kind(text: &str) -> Result<CouponKind, String> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|_| "one of license, extend, seats, upgrade".into())
}

fn parse_model(text: &str) -> Result<LicenseModel, String> {
    serde_json::from_value(Value::String(text.to_owned())).map_err(|_| "host or floating".into())
}

impl OfferArgs {
    fn grant(self, product: String) -> GrantRequest {
        GrantRequest {
            product,
            kind: self.kind,
            seats: self.seats,
            term_days: self.term_days,
            days: self.days,
            features: self.features.map(|f| f.into_iter().collect::<BTreeSet<_>>()),
            model: self.model,
        }
    }
}

/// The request a subcommand makes.
fn request(command: AdminCommand) -> anyhow::Result<AdminRequest> {
    Ok(match command {
        AdminCommand::Products(ProductsCommand::List) => AdminRequest::ListProducts,
        AdminCommand::Products(ProductsCommand::Put { id, name, settings }) => {
            let mut settings: ProductSettings = serde_json::from_str(&settings).context("--settings")?;
            if name.is_some() {
                settings.name = name;
            }
            AdminRequest::PutProduct { id, settings }
        }
        AdminCommand::Coupons(CouponsCommand::Issue { product, count, offer }) => {
            let g = offer.grant(product);
            AdminRequest::IssueCoupons(CouponsRequest {
                product: g.product,
                count,
                kind: g.kind,
                seats: g.seats,
                term_days: g.term_days,
                days: g.days,
                features: g.features,
                model: g.model,
            })
        }
        AdminCommand::Coupons(CouponsCommand::List { product, after, limit }) => {
            AdminRequest::ListCoupons { product, after, limit }
        }
        AdminCommand::Accounts(AccountsCommand::Find { email }) => AdminRequest::FindAccount { email },
        AdminCommand::Accounts(AccountsCommand::Show { account }) => AdminRequest::ShowAccount { account_id: account },
        AdminCommand::Licenses(LicensesCommand::Grant { account, product, offer }) => {
            AdminRequest::Grant { account_id: account, request: offer.grant(product) }
        }
        AdminCommand::Licenses(LicensesCommand::Revoke { account, license }) => {
            AdminRequest::Revoke { account_id: account, license_id: license }
        }
        AdminCommand::Licenses(LicensesCommand::Extend { account, license, days }) => {
            AdminRequest::Extend { account_id: account, license_id: license, days }
        }
        AdminCommand::Bindings(BindingsCommand::List { account }) => AdminRequest::ListBindings { account_id: account },
        AdminCommand::Bindings(BindingsCommand::Reset { account, binding }) => {
            AdminRequest::ResetBinding { account_id: account, binding_id: binding }
        }
    })
}

/// A path segment, percent-encoded.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The HTTP method, path and body of `request` on the admin API.
fn http(request: &AdminRequest) -> anyhow::Result<(&'static str, String, Option<Value>)> {
    let query = |pairs: &[(&str, Option<String>)]| {
        let pairs: Vec<String> =
            pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", segment(v)))).collect();
        if pairs.is_empty() { String::new() } else { format!("?{}", pairs.join("&")) }
    };
    let a = |id: &str| format!("/v1/admin/accounts/{}", segment(id));
    Ok(match request {
        AdminRequest::ListProducts => ("GET", "/v1/admin/products".into(), None),
        AdminRequest::PutProduct { id, settings } => {
            ("PUT", format!("/v1/admin/products/{}", segment(id)), Some(serde_json::to_value(settings)?))
        }
        AdminRequest::IssueCoupons(req) => ("POST", "/v1/admin/coupons".into(), Some(serde_json::to_value(req)?)),
        AdminRequest::ListCoupons { product, after, limit } => {
            let q =
                query(&[("product", product.clone()), ("after", after.clone()), ("limit", Some(limit.to_string()))]);
            ("GET", format!("/v1/admin/coupons{q}"), None)
        }
        AdminRequest::FindAccount { email } => {
            ("GET", format!("/v1/admin/accounts{}", query(&[("email", Some(email.clone()))])), None)
        }
        AdminRequest::ShowAccount { account_id } => ("GET", a(account_id), None),
        AdminRequest::Grant { account_id, request } => {
            ("POST", format!("{}/licenses", a(account_id)), Some(serde_json::to_value(request)?))
        }
        AdminRequest::Revoke { account_id, license_id } => {
            ("POST", format!("{}/licenses/{}/revoke", a(account_id), segment(license_id)), None)
        }
        AdminRequest::Extend { account_id, license_id, days } => (
            "POST",
            format!("{}/licenses/{}/extend", a(account_id), segment(license_id)),
            Some(serde_json::json!({ "days": days })),
        ),
        AdminRequest::ListBindings { account_id } => ("GET", format!("{}/bindings", a(account_id)), None),
        AdminRequest::ResetBinding { account_id, binding_id } => {
            ("POST", format!("{}/bindings/{}/reset", a(account_id), segment(binding_id)), None)
        }
    })
}

/// Sends `request` to a running server.
fn remote(server: &str, token: &str, request: &AdminRequest) -> anyhow::Result<AdminAnswer> {
    let (method, path, body) = http(request)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let auth = format!("Bearer {token}");
    let response = match (method, body) {
        ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
        (m, body) => {
            let builder = match m {
                "PUT" => agent.put(&url),
                _ => agent.post(&url),
            };
            builder.header("Authorization", &auth).send_json(body.unwrap_or_else(|| serde_json::json!({})))
        }
    };
    // The query may hold an e-mail or a coupon code: errors name the path only.
    let shown = format!("{method} {}", path.split('?').next().unwrap_or(""));
    let mut response = response.with_context(|| shown.clone())?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().with_context(|| format!("reading the answer of {shown}"))?;
    let body: Value =
        serde_json::from_str(&text).with_context(|| format!("{shown}: the server did not answer JSON"))?;
    Ok(AdminAnswer { status, body })
}

/// Carries out `request` on a stopped server's store.
fn local(data_dir: &Path, database: Option<&str>, request: AdminRequest) -> anyhow::Result<AdminAnswer> {
    anyhow::ensure!(
        crate::data_dir::is_initialised(data_dir),
        "{} is not an initialised data directory (or give --server)",
        data_dir.display()
    );
    let (store, prefix): (std::sync::Arc<dyn licet_store::Store>, String) = match database {
        Some(url) => {
            let node = crate::cluster::node(data_dir, url)?;
            (node.store, node.loaded.vendor_prefix)
        }
        None => {
            let loaded = crate::data_dir::load(data_dir, None)?;
            let options = licet_store::SledOptions { must_exist: true, ..Default::default() };
            let store = licet_store::SledStore::open_with(data_dir.join("ledger"), options).with_context(|| {
                format!(
                    "opening {} (a running server holds it: use --server; a cluster's directory: use --database)",
                    data_dir.join("ledger").display()
                )
            })?;
            (std::sync::Arc::new(store), loaded.vendor_prefix)
        }
    };
    let ledger = licet_core::Ledger::new(&prefix)?;
    let answer = perform(&*store, &ledger, chrono::Utc::now(), request);
    store.flush()?;
    Ok(match answer {
        Ok(answer) => answer,
        Err(e) => {
            let status = e.status.unwrap_or_else(|| crate::error::status_of(e.code)).as_u16();
            let body = serde_json::to_value(licet_wire::ErrorBody::new(e.code, e.message))?;
            AdminAnswer { status, body }
        }
    })
}

/// Runs `licet-server admin …`; an error answer is printed and fails the command.
pub(crate) fn run(target: Target, command: AdminCommand) -> anyhow::Result<()> {
    let request = request(command)?;
    let answer = match &target.server {
        Some(server) => {
            anyhow::ensure!(
                safe_for_the_token(server),
                "--server {server}: the admin token goes only over https:// (or http:// to this machine)"
            );
            let token =
                target.token.as_deref().context("--server needs the admin token (--token or LICET_ADMIN_TOKEN)")?;
            remote(server, token, &request)?
        }
        None => local(&target.data_dir, target.database.as_deref(), request.clone())?,
    };
    let ok = (200..300).contains(&answer.status);
    if target.json {
        println!("{}", serde_json::to_string_pretty(&answer.body)?);
    } else if ok {
        for line in crate::admin_text::lines(&request, &answer.body) {
            println!("{line}");
        }
    }
    if !ok {
        let error = &answer.body["error"];
        anyhow::bail!(
            "{} {}: {}",
            error["code"],
            error["name"].as_str().unwrap_or(""),
            error["message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_over_https_or_to_this_machine() {
        for ok in ["https://lic.example.com", "http://127.0.0.1:8080", "http://localhost:8080/", "http://[::1]:80"] {
            assert!(safe_for_the_token(ok), "{ok}");
        }
        for refused in ["http://lic.example.com", "http://10.0.0.5:8080", "ftp://x", "lic.example.com"] {
            assert!(!safe_for_the_token(refused), "{refused}");
        }
        assert_eq!(segment("a b/ö?"), "a%20b%2F%C3%B6%3F");
    }
}
