//! The portal's HTML.

use chrono::{DateTime, Utc};
use licet_core::{Account, Binding, LicenseKind};

use super::text::{Lang, Text, text};

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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

/// The frame around every page: header with the language switch and, when logged in, the
/// sign-out form.
fn frame(lang: Lang, body: &str, logout_csrf: Option<&str>) -> String {
    let t = text(lang);
    let switch = [Lang::Ru, Lang::En]
        .iter()
        .map(|&l| {
            let class = if l == lang { " class=\"current\"" } else { "" };
            format!(
                "<a href=\"/?lang={code}\"{class} lang=\"{code}\">{label}</a>",
                code = l.code(),
                label = l.code().to_uppercase()
            )
        })
        .collect::<String>();
    let logout = logout_csrf
        .map(|csrf| {
            format!(
                "<form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button class=\"secondary\" id=\"logout\">{}</button></form>",
                esc(csrf),
                t.logout
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body><header><h1>{title}</h1><nav>{switch}</nav>{logout}</header><main>{body}</main></body></html>\n",
        code = lang.code(),
        title = t.title,
    )
}

/// The login form.
pub(crate) fn login(lang: Lang, csrf: &str, error: Option<&str>) -> String {
    let t = text(lang);
    let error =
        error.map(|e| format!("<p class=\"error\" role=\"alert\" id=\"error\">{}</p>", esc(e))).unwrap_or_default();
    let body = format!(
        "<section class=\"login\"><h2>{heading}</h2><p>{hint}</p>{error}\
         <form method=\"post\" action=\"/login\"><label for=\"credential\">{label}</label>\
         <input type=\"text\" id=\"credential\" name=\"credential\" autocomplete=\"off\" spellcheck=\"false\" \
         placeholder=\"LICET-XXXXX-XXXXX-XXXXX-XXXXX\" required>\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button id=\"login\">{login}</button></form></section>",
        heading = t.login_heading,
        hint = t.login_hint,
        label = t.credential,
        csrf = esc(csrf),
        login = t.login,
    );
    frame(lang, &body, None)
}

/// A page with one message.
pub(crate) fn message(lang: Lang, message: &str) -> String {
    frame(
        lang,
        &format!("<section><p class=\"error\" id=\"error\">{}</p><p><a href=\"/\">←</a></p></section>", esc(message)),
        None,
    )
}

fn info(t: &Text, b: &Binding) -> String {
    let rows: String = b
        .host
        .fingerprint
        .components()
        .iter()
        .map(|(k, v)| format!("<tr><td>{}</td><td class=\"mono\">{}</td></tr>", esc(k), esc(v)))
        .collect();
    format!(
        "<details class=\"info\"><summary>{info}</summary><table><tr><th>{c}</th><th>{v}</th></tr>{rows}</table></details>",
        info = t.info,
        c = t.component,
        v = t.value
    )
}

/// The account page: licenses and license bindings to hosts.
pub(crate) fn account(lang: Lang, account: &Account, masked: &str, csrf: &str, flash: Option<&str>) -> String {
    let t = text(lang);
    let flash = flash.map(|f| format!("<p class=\"notice\" id=\"notice\">{}</p>", esc(f))).unwrap_or_default();
    let licenses: String = account
        .licenses
        .iter()
        .map(|l| {
            format!(
                "<tr class=\"license\"><td>{}</td><td>{}</td><td class=\"seats\">{} / {}</td><td>{}</td></tr>",
                esc(&l.product),
                kind(t, l.kind),
                account.seats_used(&l.id),
                l.seats,
                l.expires_at.map_or(t.perpetual.to_owned(), when)
            )
        })
        .collect();
    let bindings: String = account
        .bindings
        .iter()
        .map(|b| {
            format!(
                "<tr class=\"binding\" id=\"{id}\"><td>{product}</td><td>{host}</td><td>{os}</td><td>{since}</td><td>{seen}</td>\
                 <td>{info}</td><td><a class=\"button danger\" href=\"/reset/{id}\">{reset}</a></td></tr>",
                id = esc(&b.id),
                product = esc(&b.product),
                host = esc(&b.host.hostname),
                os = esc(&b.host.os),
                since = when(b.bound_at),
                seen = when(b.last_seen),
                info = info(t, b),
                reset = t.reset,
            )
        })
        .collect();
    let bindings = if account.bindings.is_empty() {
        format!("<p id=\"no-bindings\">{}</p>", t.no_bindings)
    } else {
        format!(
            "<table id=\"bindings\"><tr><th>{p}</th><th>{h}</th><th>{o}</th><th>{s}</th><th>{l}</th><th></th><th></th></tr>{bindings}</table>",
            p = t.product,
            h = t.host,
            o = t.os,
            s = t.bound_since,
            l = t.last_seen
        )
    };
    let body = format!(
        "{flash}<section><h2 id=\"organization\">{org}</h2><p>{number_label}: <code id=\"number\">{masked}</code></p></section>\
         <section><h2>{licenses_h}</h2><table id=\"licenses\"><tr><th>{p}</th><th>{k}</th><th>{s}</th><th>{e}</th></tr>{licenses}</table></section>\
         <section><h2>{bindings_h}</h2>{bindings}</section>",
        org = esc(&account.organization),
        number_label = t.number,
        masked = esc(masked),
        licenses_h = t.licenses,
        p = t.product,
        k = t.kind,
        s = t.seats,
        e = t.expires,
        bindings_h = t.bindings,
    );
    frame(lang, &body, Some(csrf))
}

/// Asks before a reset.
pub(crate) fn confirm_reset(lang: Lang, b: &Binding, csrf: &str) -> String {
    let t = text(lang);
    let body = format!(
        "<section><h2>{heading}</h2><p><strong>{host}</strong> ({product}, {os})</p><p>{text}</p>\
         <form method=\"post\" action=\"/reset/{id}\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button class=\"danger\" id=\"confirm\">{reset}</button></form> <a class=\"button secondary\" href=\"/\">{cancel}</a></section>",
        heading = t.confirm_heading,
        host = esc(&b.host.hostname),
        product = esc(&b.product),
        os = esc(&b.host.os),
        text = t.confirm_text,
        id = esc(&b.id),
        csrf = esc(csrf),
        reset = t.reset,
        cancel = t.cancel,
    );
    frame(lang, &body, Some(csrf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_attributes() {
        assert_eq!(esc("<b a=\"x\">&'"), "&lt;b a=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn pages_are_in_the_chosen_language() {
        assert!(login(Lang::Ru, "t", None).contains("Вход"));
        assert!(
            login(Lang::En, "t", Some("<x>")).contains("Sign in")
                && login(Lang::En, "t", Some("<x>")).contains("&lt;x&gt;")
        );
    }
}
