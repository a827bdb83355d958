//! The readable lines `licet-server admin` prints without `--json`, made from the same JSON.

use serde_json::Value;

use crate::admin::AdminRequest;

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn license(l: &Value) -> String {
    let mut line = format!(
        "{}  {}  {}  seats {}/{}  until {}",
        text(&l["id"]),
        text(&l["product"]),
        text(&l["kind"]),
        text(&l["seats_used"]),
        text(&l["seats"]),
        text(&l["expires_at"]),
    );
    if l["model"] == "floating" {
        line.push_str("  floating");
    }
    if !l["revoked_at"].is_null() {
        line.push_str(&format!("  REVOKED {}", text(&l["revoked_at"])));
    }
    line
}

fn binding(b: &Value) -> String {
    format!(
        "{}  {}  {} ({})  bound {}  last seen {}",
        text(&b["id"]),
        text(&b["product"]),
        text(&b["host"]["hostname"]),
        text(&b["host"]["os"]),
        text(&b["bound_at"]),
        text(&b["last_seen"]),
    )
}

fn account(a: &Value) -> Vec<String> {
    let mut lines = vec![
        format!("{}  {}  {}", text(&a["id"]), text(&a["email"]), text(&a["organization"])),
        format!("registration number: {}", text(&a["registration_number"])),
    ];
    let list = |key: &str| a[key].as_array().cloned().unwrap_or_default();
    lines.push(format!("licenses ({}):", list("licenses").len()));
    lines.extend(list("licenses").iter().map(|l| format!("  {}", license(l))));
    lines.push(format!("bindings ({}):", list("bindings").len()));
    lines.extend(list("bindings").iter().map(|b| format!("  {}", binding(b))));
    lines
}

/// What to print for `request`'s successful answer `body`.
pub(crate) fn lines(request: &AdminRequest, body: &Value) -> Vec<String> {
    let items = |key: &str| body[key].as_array().cloned().unwrap_or_default();
    match request {
        AdminRequest::ListProducts => items("products")
            .iter()
            .map(|p| {
                format!(
                    "{}  {}  trial {} days, {} seats  features {}",
                    text(&p["id"]),
                    text(&p["name"]),
                    text(&p["trial_days"]),
                    text(&p["trial_seats"]),
                    text(&p["features"]),
                )
            })
            .collect(),
        AdminRequest::PutProduct { .. } => vec![format!("{}  {}", text(&body["id"]), text(&body["name"]))],
        AdminRequest::IssueCoupons(_) => items("coupons").iter().map(text).collect(),
        AdminRequest::ListCoupons { .. } => {
            let mut lines: Vec<String> = items("coupons")
                .iter()
                .map(|c| {
                    let redeemed = match &c["redeemed"] {
                        Value::Null => "unused".to_owned(),
                        r => format!(
                            "redeemed by {} ({}) {}",
                            text(&r["account_id"]),
                            text(&r["license_id"]),
                            text(&r["at"])
                        ),
                    };
                    format!("{}  {}  {}  {redeemed}", text(&c["code"]), text(&c["product"]), text(&c["kind"]))
                })
                .collect();
            if !body["next"].is_null() {
                lines.push(format!("more: --after {}", text(&body["next"])));
            }
            lines
        }
        AdminRequest::FindAccount { .. } | AdminRequest::ShowAccount { .. } => account(body),
        AdminRequest::Grant { .. } | AdminRequest::Revoke { .. } | AdminRequest::Extend { .. } => {
            vec![license(&body["license"])]
        }
        AdminRequest::ListBindings { .. } => items("bindings").iter().map(binding).collect(),
        AdminRequest::ResetBinding { binding_id, .. } => vec![format!("{binding_id} freed")],
    }
}
