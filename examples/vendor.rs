//! A vendor's admin script: create (or update) a product and issue a batch of coupons.
//!
//! `cargo run --example vendor -- [count=5] [seats=1] [term_days]`
//! Uses `LICET_SERVER`, `LICET_TRUSTED_KEYS` and `LICET_ADMIN_TOKEN` if set, otherwise a
//! throwaway local server.

#[path = "common/demo.rs"]
mod demo;

use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let count: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let seats: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);
    let term_days: Option<u32> = args.next().map(|a| a.parse()).transpose()?;

    let server = demo::server()?;
    let token = server.admin_token.clone().ok_or("set LICET_ADMIN_TOKEN")?;
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let auth = format!("Bearer {token}");

    let mut response = http
        .put(format!("{}/v1/admin/products/call-journal", server.url))
        .header("Authorization", &auth)
        .send_json(json!({"name": "Call journal", "trial_days": 30, "trial_seats": 1,
                          "offline_lease_hours": 168, "clock_tolerance_minutes": 60}))?;
    let product: Value = response.body_mut().read_json()?;
    if response.status() != 200 {
        return Err(format!("product not saved: {product}").into());
    }
    println!(
        "product {} ({}): {}-day trials, {} h offline lease",
        product["id"], product["name"], product["trial_days"], product["offline_lease_hours"]
    );

    let mut response = http
        .post(format!("{}/v1/admin/coupons", server.url))
        .header("Authorization", &auth)
        .send_json(json!({"product": "call-journal", "count": count, "seats": seats, "term_days": term_days}))?;
    let batch: Value = response.body_mut().read_json()?;
    if response.status() != 201 {
        return Err(format!("coupons not issued: {batch}").into());
    }
    let kind = term_days.map_or("perpetual".to_owned(), |d| format!("{d}-day subscription"));
    println!("{count} coupons, each a {kind} license for {seats} seat(s):");
    for code in batch["coupons"].as_array().into_iter().flatten() {
        println!("{}", code.as_str().unwrap_or_default());
    }
    Ok(())
}
