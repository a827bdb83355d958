//! What the vendor's operator does by hand: every admin request as a value ([`AdminRequest`]),
//! carried out by one function ([`perform`]) for the admin HTTP endpoints and for
//! `licet-server admin` on a stopped server's data directory or database alike, so that both
//! answer with the same JSON.

use axum::Router;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, put};
use chrono::{DateTime, Utc};
use licet_core::{
    AccountFound, Command, CouponCode, Error, Ledger, Product, ProductSettings, Record, RecordKey, Redeemed, Table,
};
use licet_store::{OsEntropy, Store, StoreExt};
use licet_wire::{
    AccountObject, BindingObject, ClockRequest, CouponObject, CouponsAnswer, CouponsRequest, EmailQuery, Empty,
    GrantRequest, LicenseAnswer, ProductObject,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::app::{AppState, json};
use crate::error::ApiError;
use crate::extract::{Bearer, ClientIp, JsonBody};

/// The most coupons one listing page holds.
pub(crate) const MAX_PAGE: usize = 1_000;

/// One admin request.
#[derive(Clone, Debug)]
pub(crate) enum AdminRequest {
    /// Creates a product or changes its settings.
    PutProduct {
        /// Its slug.
        id: String,
        /// Its settings (absent fields keep their defaults or current values).
        settings: ProductSettings,
    },
    /// Every product.
    ListProducts,
    /// Issues coupons.
    IssueCoupons(CouponsRequest),
    /// A page of coupons, in code order, optionally of one product.
    ListCoupons {
        /// Only this product's.
        product: Option<String>,
        /// Start after this code (the previous page's `next`).
        after: Option<String>,
        /// At most this many (1–[`MAX_PAGE`]).
        limit: usize,
    },
    /// The account registered with an e-mail.
    FindAccount {
        /// The e-mail.
        email: String,
    },
    /// An account by id.
    ShowAccount {
        /// `acc_…`.
        account_id: String,
    },
    /// A license, or a change to one, without a coupon.
    Grant {
        /// `acc_…`.
        account_id: String,
        /// What to grant.
        request: GrantRequest,
    },
    /// Revokes a license.
    Revoke {
        /// `acc_…`.
        account_id: String,
        /// `lic_…`.
        license_id: String,
    },
    /// Adds days to a license's term.
    Extend {
        /// `acc_…`.
        account_id: String,
        /// `lic_…`.
        license_id: String,
        /// Days added.
        days: u32,
    },
    /// An account's bindings.
    ListBindings {
        /// `acc_…`.
        account_id: String,
    },
    /// Frees a binding.
    ResetBinding {
        /// `acc_…`.
        account_id: String,
        /// `bnd_…`.
        binding_id: String,
    },
}

/// An admin answer: the HTTP status and the JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AdminAnswer {
    /// 200 or 201.
    pub(crate) status: u16,
    /// The body.
    pub(crate) body: Value,
}

fn answer(status: StatusCode, body: impl Serialize) -> Result<AdminAnswer, ApiError> {
    let body = serde_json::to_value(body).map_err(|e| ApiError::from(Error::Internal(e.to_string())))?;
    Ok(AdminAnswer { status: status.as_u16(), body })
}

/// 404 for what the request names and the ledger does not have.
fn missing(what: &str) -> ApiError {
    ApiError { status: Some(StatusCode::NOT_FOUND), ..ApiError::invalid(what) }
}

/// A ledger error; an account or license the ledger could not find (the only use of those
/// fields) is 404.
fn refused(e: Error) -> ApiError {
    let missing = matches!(&e, Error::InvalidInput { field: "account" | "license", .. });
    let e = ApiError::from(e);
    if missing { ApiError { status: Some(StatusCode::NOT_FOUND), ..e } } else { e }
}

/// Carries out `request` on `store` at `now`. Blocking: run it where a thread may block.
pub(crate) fn perform(
    store: &dyn Store,
    ledger: &Ledger,
    now: DateTime<Utc>,
    request: AdminRequest,
) -> Result<AdminAnswer, ApiError> {
    let run = |command: Command| -> Result<licet_core::Outcome, ApiError> {
        store.transact(|tx| ledger.handle(tx, now, &mut OsEntropy, &command)).map_err(refused)
    };
    match request {
        AdminRequest::PutProduct { id, settings } => {
            let product: Product = run(Command::PutProduct { id, settings })?.try_into()?;
            answer(StatusCode::OK, ProductObject::of(&product))
        }
        AdminRequest::ListProducts => {
            let products: Vec<ProductObject> = read_all(store, Table::Product, |r| match r {
                Record::Product(p) => Some(ProductObject::of(&p)),
                _ => None,
            })?;
            answer(StatusCode::OK, json!({ "products": products }))
        }
        AdminRequest::IssueCoupons(req) => {
            let batch = req.to_batch().map_err(ApiError::from)?;
            let kind = batch.offer.kind();
            let codes: Vec<CouponCode> = run(Command::IssueCoupons(batch))?.try_into()?;
            answer(
                StatusCode::CREATED,
                CouponsAnswer { coupons: codes.iter().map(ToString::to_string).collect(), kind },
            )
        }
        AdminRequest::ListCoupons { product, after, limit } => list_coupons(store, ledger, product, after, limit),
        AdminRequest::FindAccount { email } => {
            let found: Option<AccountFound> = run(Command::AccountByEmail { email })?.try_into()?;
            let found = found.ok_or_else(|| missing("no account is registered with this e-mail"))?;
            answer(StatusCode::OK, AccountObject::of(&found, true, now))
        }
        AdminRequest::ShowAccount { account_id } => {
            let found: Option<AccountFound> = run(Command::AccountById { account_id })?.try_into()?;
            answer(StatusCode::OK, AccountObject::of(&found.ok_or_else(|| missing("no such account"))?, true, now))
        }
        AdminRequest::Grant { account_id, request } => {
            let offer = request.to_offer().map_err(ApiError::from)?;
            let command = Command::Grant { account_id, product: request.product, offer };
            let granted: Redeemed = run(command)?.try_into()?;
            answer(StatusCode::CREATED, license_answer(&granted, now))
        }
        AdminRequest::Revoke { account_id, license_id } => {
            let revoked: Redeemed = run(Command::Revoke { account_id, license_id })?.try_into()?;
            answer(StatusCode::OK, license_answer(&revoked, now))
        }
        AdminRequest::Extend { account_id, license_id, days } => {
            let extended: Redeemed = run(Command::Extend { account_id, license_id, days })?.try_into()?;
            answer(StatusCode::OK, license_answer(&extended, now))
        }
        AdminRequest::ListBindings { account_id } => {
            let found: Option<AccountFound> = run(Command::AccountById { account_id })?.try_into()?;
            let bindings: Vec<BindingObject> = found
                .ok_or_else(|| missing("no such account"))?
                .account
                .bindings
                .iter()
                .map(BindingObject::of)
                .collect();
            answer(StatusCode::OK, json!({ "bindings": bindings }))
        }
        AdminRequest::ResetBinding { account_id, binding_id } => {
            let () = run(Command::FreeBinding { account_id, binding_id })?.try_into()?;
            answer(StatusCode::OK, Empty {})
        }
    }
}

fn license_answer(r: &Redeemed, now: DateTime<Utc>) -> LicenseAnswer {
    LicenseAnswer { license: licet_wire::LicenseObject::at(&r.license, r.seats_used, &r.product, now) }
}

/// Every record of `table` that `keep` maps, read a page of keys at a time.
fn read_all<T>(store: &dyn Store, table: Table, mut keep: impl FnMut(Record) -> Option<T>) -> Result<Vec<T>, ApiError> {
    let mut out = Vec::new();
    store.for_each_record(table, 500, |record| out.extend(keep(record)))?;
    Ok(out)
}

/// A page of coupons after the code `after`, with the code to continue from.
fn list_coupons(
    store: &dyn Store,
    ledger: &Ledger,
    product: Option<String>,
    after: Option<String>,
    limit: usize,
) -> Result<AdminAnswer, ApiError> {
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(Error::input("limit", format!("must be 1..={MAX_PAGE}")).into());
    }
    let mut cursor = match after {
        Some(code) => Some(RecordKey::Coupon(
            CouponCode::parse(&code).map_err(|_| ApiError::invalid("after: not a coupon code"))?.body(),
        )),
        None => None,
    };
    let mut coupons: Vec<CouponObject> = Vec::new();
    // Filtering by product may skip pages; each turn reads one page of keys.
    loop {
        let page = store.keys(Table::Coupon, cursor.as_ref(), limit)?;
        let Some(last) = page.last().cloned() else { break };
        for record in store.records(&page)? {
            let Record::Coupon(coupon) = record else { continue };
            if product.as_ref().is_none_or(|p| *p == coupon.product) && coupons.len() < limit {
                let code = CouponCode::parse(&format!("{}UPD-{}", ledger.vendor(), coupon.body))
                    .map_or_else(|_| coupon.body.clone(), |c| c.to_string());
                coupons.push(CouponObject::of(&coupon, code));
            }
        }
        cursor = Some(last);
        if coupons.len() >= limit || page.len() < limit {
            break;
        }
    }
    let next = (coupons.len() == limit).then(|| coupons.last().map(|c| c.code.clone())).flatten();
    answer(StatusCode::OK, json!({ "coupons": coupons, "next": next }))
}

/// Runs `request` for an admin HTTP endpoint, after the admin token was checked.
async fn run(app: &AppState, request: AdminRequest) -> Result<Response, ApiError> {
    let app2 = app.clone();
    let now = app.clock.now();
    let answer = tokio::task::spawn_blocking(move || perform(&*app2.store, &app2.ledger, now, request))
        .await
        .map_err(|_| ApiError::new(licet_core::Code::InternalError))??;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    Ok(json(status, answer.body))
}

/// A path parameter, or 1001.
fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v).map_err(|_| ApiError::invalid("malformed path"))
}

/// `GET /v1/admin/coupons`'s query.
#[derive(Deserialize)]
struct CouponsQuery {
    product: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
}

/// `POST …/extend`'s body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExtendBody {
    /// Days added, 1–36600.
    #[schema(minimum = 1, maximum = 36600)]
    days: u32,
}

/// The admin endpoints. The admin token is checked by a layer in front of them, before any of
/// them reads its path, query or body: without the token every one of them answers 401 (and the
/// attempt counts toward the client's rate limit). `/v1/admin/clock` exists only with a dev clock.
pub(crate) fn routes(app: &AppState) -> Router<AppState> {
    let mut router = Router::new()
        .route("/v1/admin/products", get(list_products))
        .route("/v1/admin/products/{id}", put(put_product))
        .route("/v1/admin/coupons", post(issue_coupons).get(list_coupons_endpoint))
        .route("/v1/admin/accounts", get(find_account))
        .route("/v1/admin/accounts/{id}", get(show_account))
        .route("/v1/admin/accounts/{id}/licenses", post(grant))
        .route("/v1/admin/accounts/{id}/licenses/{license}/revoke", post(revoke))
        .route("/v1/admin/accounts/{id}/licenses/{license}/extend", post(extend))
        .route("/v1/admin/accounts/{id}/bindings", get(list_bindings))
        .route("/v1/admin/accounts/{id}/bindings/{binding}/reset", post(reset_binding));
    if app.clock.is_dev() {
        router = router.route("/v1/admin/clock", post(set_clock));
    }
    router.route_layer(axum::middleware::from_fn_with_state(app.clone(), require_admin))
}

/// Lets a request through only with the admin token.
async fn require_admin(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    bearer: Result<Bearer, ApiError>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    app.admin(ip, bearer).await?;
    Ok(next.run(request).await)
}

async fn set_clock(State(app): State<AppState>, JsonBody(req): JsonBody<ClockRequest>) -> Result<Response, ApiError> {
    app.clock.set(req.now);
    Ok(json(StatusCode::OK, ClockRequest { now: app.clock.now() }))
}

#[utoipa::path(get, path = "/v1/admin/products", responses((status = 200, description = "`{products: [product]}`", body = serde_json::Value), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("admin" = [])))]
async fn list_products(State(app): State<AppState>) -> Result<Response, ApiError> {
    run(&app, AdminRequest::ListProducts).await
}

#[utoipa::path(put, path = "/v1/admin/products/{id}", request_body = ProductSettings, params(("id" = String, Path, description = "the product's slug")), responses((status = 200, description = "the product as stored", body = ProductObject), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("admin" = [])))]
async fn put_product(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(settings): JsonBody<ProductSettings>,
) -> Result<Response, ApiError> {
    let id = id.map(|Path(id)| id).map_err(|_| ApiError::invalid("malformed product id"))?;
    run(&app, AdminRequest::PutProduct { id, settings }).await
}

#[utoipa::path(post, path = "/v1/admin/coupons", request_body = CouponsRequest, responses((status = 201, description = "the codes, in full", body = CouponsAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("admin" = [])))]
async fn issue_coupons(
    State(app): State<AppState>,
    JsonBody(req): JsonBody<CouponsRequest>,
) -> Result<Response, ApiError> {
    run(&app, AdminRequest::IssueCoupons(req)).await
}

#[utoipa::path(get, path = "/v1/admin/coupons", params(("product" = Option<String>, Query, description = "only this product's"), ("after" = Option<String>, Query, description = "continue after this code"), ("limit" = Option<usize>, Query, description = "1–1000, default 100")), responses((status = 200, description = "`{coupons: [coupon], next}`", body = serde_json::Value), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("admin" = [])))]
async fn list_coupons_endpoint(
    State(app): State<AppState>,
    query: Result<Query<CouponsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|_| ApiError::invalid("malformed query"))?;
    run(&app, AdminRequest::ListCoupons { product: q.product, after: q.after, limit: q.limit.unwrap_or(100) }).await
}

#[utoipa::path(get, path = "/v1/admin/accounts", params(("email" = String, Query, description = "the address")), responses((status = 200, description = "the account, number in full", body = AccountObject), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("admin" = [])))]
async fn find_account(
    State(app): State<AppState>,
    query: Result<Query<EmailQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|_| ApiError::invalid("the email query parameter is required"))?;
    run(&app, AdminRequest::FindAccount { email: q.email }).await
}

#[utoipa::path(get, path = "/v1/admin/accounts/{id}", params(("id" = String, Path, description = "acc_…")), responses((status = 200, description = "the account, number in full", body = AccountObject), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("admin" = [])))]
async fn show_account(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    run(&app, AdminRequest::ShowAccount { account_id: path(id)? }).await
}

#[utoipa::path(post, path = "/v1/admin/accounts/{id}/licenses", request_body = GrantRequest, params(("id" = String, Path, description = "acc_…")), responses((status = 201, description = "the license made or changed", body = LicenseAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("admin" = [])))]
async fn grant(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(request): JsonBody<GrantRequest>,
) -> Result<Response, ApiError> {
    run(&app, AdminRequest::Grant { account_id: path(id)?, request }).await
}

#[utoipa::path(post, path = "/v1/admin/accounts/{id}/licenses/{license}/revoke", params(("id" = String, Path, description = "acc_…"), ("license" = String, Path, description = "lic_…")), responses((status = 200, description = "the license, revoked", body = LicenseAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("admin" = [])))]
async fn revoke(
    State(app): State<AppState>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (account_id, license_id) = path(ids)?;
    run(&app, AdminRequest::Revoke { account_id, license_id }).await
}

#[utoipa::path(post, path = "/v1/admin/accounts/{id}/licenses/{license}/extend", request_body = ExtendBody, params(("id" = String, Path, description = "acc_…"), ("license" = String, Path, description = "lic_…")), responses((status = 200, description = "the license, extended", body = LicenseAnswer), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("admin" = [])))]
async fn extend(
    State(app): State<AppState>,
    ids: Result<Path<(String, String)>, PathRejection>,
    JsonBody(body): JsonBody<ExtendBody>,
) -> Result<Response, ApiError> {
    let (account_id, license_id) = path(ids)?;
    run(&app, AdminRequest::Extend { account_id, license_id, days: body.days }).await
}

#[utoipa::path(get, path = "/v1/admin/accounts/{id}/bindings", params(("id" = String, Path, description = "acc_…")), responses((status = 200, description = "`{bindings: [binding]}`", body = serde_json::Value), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("admin" = [])))]
async fn list_bindings(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    run(&app, AdminRequest::ListBindings { account_id: path(id)? }).await
}

#[utoipa::path(post, path = "/v1/admin/accounts/{id}/bindings/{binding}/reset", params(("id" = String, Path, description = "acc_…"), ("binding" = String, Path, description = "bnd_…")), responses((status = 200, description = "the seat is free", body = Empty), (status = "4XX", description = "refused or malformed: `{error: {code, name, message}}`", body = licet_wire::ErrorBody), (status = "5XX", description = "1099: the store is unavailable (503, retry after `Retry-After`) or failed (500)", body = licet_wire::ErrorBody)), security(("admin" = [])))]
async fn reset_binding(
    State(app): State<AppState>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let (account_id, binding_id) = path(ids)?;
    run(&app, AdminRequest::ResetBinding { account_id, binding_id }).await
}
