//! The portal's pages: askama templates in `templates/`, which escape every value by default,
//! filled from these structs.

use askama::Template;
use chrono::{DateTime, Utc};
use licet_core::{AccountFound, Binding, LicenseKind, LicenseModel, Session};

use super::text::{Lang, Text, text};

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn kind(t: &Text, k: LicenseKind) -> &'static str {
    match k {
        LicenseKind::Trial => t.trial,
        LicenseKind::Subscription => t.subscription,
        LicenseKind::Perpetual => t.perpetual_kind,
    }
}

/// A link of the language switch.
struct LangLink {
    code: &'static str,
    label: String,
    current: bool,
}

/// What every page's frame shows: the language and its words, the switch, and when logged in
/// the sign-out form's token.
struct Frame<'a> {
    lang: &'static str,
    t: &'static Text,
    langs: Vec<LangLink>,
    logout_csrf: Option<&'a str>,
}

impl<'a> Frame<'a> {
    fn new(lang: Lang, logout_csrf: Option<&'a str>) -> Frame<'a> {
        let langs = [Lang::Ru, Lang::En]
            .into_iter()
            .map(|l| LangLink { code: l.as_str(), label: l.as_str().to_uppercase(), current: l == lang })
            .collect();
        Frame { lang: lang.as_str(), t: text(lang), langs, logout_csrf }
    }
}

/// Renders a page; a template cannot fail on data, so a failure is the server's fault, logged.
fn render(page: &impl Template) -> String {
    page.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a portal page did not render");
        String::from("internal error")
    })
}

#[derive(Template)]
#[template(path = "login.html")]
struct Login<'a> {
    frame: Frame<'a>,
    csrf: &'a str,
    error: Option<&'a str>,
}

/// The login form.
pub(crate) fn login(lang: Lang, csrf: &str, error: Option<&str>) -> String {
    render(&Login { frame: Frame::new(lang, None), csrf, error })
}

#[derive(Template)]
#[template(path = "message.html")]
struct Message<'a> {
    frame: Frame<'a>,
    message: &'a str,
}

/// A page with one message.
pub(crate) fn message(lang: Lang, message: &str) -> String {
    render(&Message { frame: Frame::new(lang, None), message })
}

struct LicenseRow {
    product: String,
    kind: &'static str,
    floating: bool,
    seats_used: u32,
    seats: u32,
    expires: String,
    features: String,
    grace_until: String,
    in_grace: bool,
    resets_left: String,
}

struct BindingRow {
    id: String,
    product: String,
    hostname: String,
    os: String,
    bound_at: String,
    last_seen: String,
    components: Vec<(String, String)>,
}

impl BindingRow {
    /// The row of binding `b`, its product shown by its name.
    fn of(b: &Binding, found: &AccountFound) -> BindingRow {
        BindingRow {
            id: b.id.clone(),
            product: found.product_name(&b.product).to_owned(),
            hostname: b.host.hostname.clone(),
            os: b.host.os.clone(),
            bound_at: when(b.bound_at),
            last_seen: when(b.last_seen),
            components: b.host.fingerprint.components().iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

struct SessionRow {
    id: String,
    product: String,
    hostname: String,
    user: String,
    started_at: String,
    last_heartbeat: String,
    lease_until: String,
    borrowed: bool,
}

impl SessionRow {
    /// The row of session `s`, its product shown by its name.
    fn of(s: &Session, found: &AccountFound) -> SessionRow {
        SessionRow {
            id: s.id.clone(),
            product: found.product_name(&s.product).to_owned(),
            hostname: s.host.hostname.clone(),
            user: if s.user.is_empty() { "—".to_owned() } else { s.user.clone() },
            started_at: when(s.started_at),
            last_heartbeat: when(s.last_heartbeat),
            lease_until: when(s.lease_until),
            borrowed: s.borrowed,
        }
    }
}

/// The session monitor's tabs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tab {
    /// License bindings to hosts (the default, as before floating licenses).
    Bindings,
    /// Floating sessions.
    Sessions,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    frame: Frame<'a>,
    flash: Option<&'a str>,
    organization: &'a str,
    masked: &'a str,
    licenses: Vec<LicenseRow>,
    bindings: Vec<BindingRow>,
    sessions: Vec<SessionRow>,
    sessions_tab: bool,
    csrf: &'a str,
}

/// The account page at `now`: licenses (with their features, grace and resets left) and the
/// session monitor on `tab`: license bindings to hosts, or live floating sessions.
pub(crate) fn account(
    lang: Lang,
    found: &AccountFound,
    now: DateTime<Utc>,
    csrf: &str,
    flash: Option<&str>,
    tab: Tab,
) -> String {
    let t = text(lang);
    let account = &found.account;
    let licenses = account
        .licenses
        .iter()
        .map(|l| {
            let facts = found.facts(l, now);
            let grace_until = facts.grace_until.filter(|end| Some(*end) != l.expires_at);
            LicenseRow {
                product: found.product_name(&l.product).to_owned(),
                kind: kind(t, l.kind),
                floating: l.model == LicenseModel::Floating,
                seats_used: account.seats_taken(l, now),
                seats: l.seats,
                expires: l.expires_at.map_or(t.perpetual.to_owned(), when),
                features: if facts.features.is_empty() { t.all_features.to_owned() } else { facts.features.join(", ") },
                in_grace: facts.in_grace,
                grace_until: grace_until.map_or_else(|| "—".to_owned(), when),
                // A floating seat is released, not reset: no limit applies.
                resets_left: match (l.model, facts.resets_left) {
                    (LicenseModel::Floating, _) => "—".to_owned(),
                    (_, None) => t.unlimited.to_owned(),
                    (_, Some(n)) => n.to_string(),
                },
            }
        })
        .collect();
    let masked = found.number.masked();
    render(&AccountPage {
        frame: Frame::new(lang, Some(csrf)),
        flash,
        organization: &account.organization,
        masked: &masked,
        licenses,
        bindings: account.bindings.iter().map(|b| BindingRow::of(b, found)).collect(),
        sessions: account.sessions.iter().filter(|s| s.is_live(now)).map(|s| SessionRow::of(s, found)).collect(),
        sessions_tab: tab == Tab::Sessions,
        csrf,
    })
}

#[derive(Template)]
#[template(path = "offline.html")]
struct Offline<'a> {
    frame: Frame<'a>,
    csrf: &'a str,
    request: &'a str,
    token: Option<&'a str>,
    error: Option<&'a str>,
}

/// The offline activation page: the form (with `request` as pasted, after an error), or the token.
pub(crate) fn offline(lang: Lang, csrf: &str, request: &str, token: Option<&str>, error: Option<&str>) -> String {
    render(&Offline { frame: Frame::new(lang, Some(csrf)), csrf, request, token, error })
}

#[derive(Template)]
#[template(path = "confirm_reset.html")]
struct ConfirmReset<'a> {
    frame: Frame<'a>,
    binding: BindingRow,
    csrf: &'a str,
}

/// Asks before a reset.
pub(crate) fn confirm_reset(lang: Lang, b: &Binding, found: &AccountFound, csrf: &str) -> String {
    render(&ConfirmReset { frame: Frame::new(lang, Some(csrf)), binding: BindingRow::of(b, found), csrf })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_and_pages_are_in_the_chosen_language() {
        assert!(login(Lang::Ru, "t", None).contains("Вход"));
        let page = login(Lang::En, "t\"><script>", Some("<x>"));
        assert!(page.contains("Sign in"));
        assert!(page.contains("&#60;x&#62;") && !page.contains("<x>"), "{page}");
        assert!(!page.contains("<script>") && page.contains(r#"value="t&#34;&#62;&#60;script&#62;""#), "{page}");
        assert!(message(Lang::En, "<b>&").contains("&#60;b&#62;&#38;"));
    }
}
