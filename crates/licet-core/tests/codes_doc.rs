//! `docs/codes.md`'s table is the code table of `licet_core::Code`, rendered: a code added or
//! changed without the docs fails here. `LICET_BLESS=1 cargo test -p licet-core --test codes_doc`
//! rewrites the table (the text around it is written by hand).

use licet_core::Code;

const BEGIN: &str = "<!-- codes: generated from licet_core::Code -->\n";
const END: &str = "<!-- codes: end -->\n";

fn table() -> String {
    let mut text = String::from(
        "| code | name | HTTP | what it means | counts toward the rate limit | deletes a cached token (signed) | known to 0.1.0 agents |\n|---|---|---|---|---|---|---|\n",
    );
    let yes = |b: bool| if b { "yes" } else { "" };
    for code in Code::ALL {
        text.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} | {} |\n",
            code.number(),
            code.name(),
            code.http_status(),
            code.message(),
            yes(code.is_failed_credential()),
            yes(code.is_definitive()),
            yes(code.known_to_0_1_0()),
        ));
    }
    text
}

#[test]
fn the_documented_codes_are_the_codes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/codes.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let (before, rest) = doc.split_once(BEGIN).expect("docs/codes.md marks its generated table");
    let (documented, after) = rest.split_once(END).expect("docs/codes.md ends its generated table");
    let table = table();
    if std::env::var_os("LICET_BLESS").is_some() {
        std::fs::write(path, format!("{before}{BEGIN}{table}{END}{after}")).unwrap();
        return;
    }
    assert!(documented == table, "docs/codes.md's table is not the code table; regenerate it:\n{table}");
}
