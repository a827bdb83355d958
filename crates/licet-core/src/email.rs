//! E-mail addresses: which are accepted, and when two are the same customer.
//!
//! **The rule** (docs/accounts.md), applied to what a customer types:
//!
//! 1. Surrounding white space is dropped and the address is put in Unicode normalisation form C
//!    (NFC), so `a` + U+0301 and `á` are one address.
//! 2. At most 254 bytes in all and 64 before the `@`; exactly one `@`.
//! 3. Nothing invisible or structural anywhere: no control or format character (general category
//!    `C*`: zero-width spaces and joiners, the soft hyphen, bidirectional controls, byte order
//!    marks, unassigned code points), no space or separator (`Z*`), and no other default-ignorable
//!    code point (variation selectors, the combining grapheme joiner, Hangul fillers…).
//! 4. The local part is one or more atoms joined by single dots. An atom holds ASCII letters and
//!    digits, ``! # $ % & ' * + - / = ? ^ _ ` { | } ~`` (RFC 5322 `atext`), and non-ASCII letters,
//!    digits and marks (RFC 6531), a mark never first. Quoted local parts and the characters
//!    `" ( ) , : ; < > @ [ \ ]` are refused: they would change the meaning of a `To:` header.
//! 5. The domain is two or more labels joined by dots, each 1–63 bytes of letters, digits and
//!    hyphens (non-ASCII letters, digits and marks too: internationalised domains), not starting
//!    or ending with a hyphen; the last label is not all digits. Address literals are refused.
//!
//! **Identity**: two accepted addresses are the same customer when their local parts are equal
//! after Unicode lower-casing and NFC, and their domains after UTS #46 processing to ASCII
//! (case, full-width forms, Punycode: `ｅｘａｍｐｌｅ.com` is `example.com`) — [`identity`];
//! case-insensitive as SPEC §1 says, across scripts.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

use crate::error::Error;

/// The special characters RFC 5322 allows in an atom.
const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";

/// Validates an address by the rule above; returns it as stored and mailed (trimmed, NFC).
pub fn normalize(raw: &str) -> Result<String, Error> {
    let email: String = raw.trim().nfc().collect();
    check(&email).map_err(|why| Error::input("email", format!("not a valid e-mail address: {why}")))?;
    Ok(email)
}

/// Whether `email`, as stored, passes the rule once normalised (addresses stored by release
/// 0.1.0 may not).
pub fn is_valid(email: &str) -> bool {
    normalize(email).is_ok()
}

/// The identity of an accepted address (the e-mail index's key): the local part in lower case
/// and NFC, the domain as UTS #46 maps it to ASCII.
pub fn identity(email: &str) -> String {
    let lower = |text: &str| -> String { text.nfc().collect::<String>().to_lowercase().nfc().collect() };
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let domain = idna::domain_to_ascii(domain).unwrap_or_else(|_| lower(domain));
            format!("{}@{domain}", lower(local))
        }
        None => lower(email),
    }
}

/// The index key release 0.1.0 used (trimmed, lower case): for stored addresses the rule refuses.
pub fn identity_0_1_0(email: &str) -> String {
    email.trim().to_lowercase()
}

/// An account as the e-mail index knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredEmail {
    /// The account.
    pub account_id: String,
    /// Its e-mail, as stored.
    pub email: String,
}

/// One index entry to move: the account is found under `to` instead of `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexMove {
    /// The account.
    pub account_id: String,
    /// Its key under release 0.1.0's rule, removed; `None` keeps it (an account in a collision,
    /// which keeps its old key and gets the new one that nobody held).
    pub from: Option<String>,
    /// Its key under this release's rule.
    pub to: String,
}

/// What re-indexing the accounts of an older release found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EmailReport {
    /// Accounts now found under their new identity (composed forms, other scripts' case).
    pub reindexed: usize,
    /// Accounts whose addresses are one identity under this rule. Nothing of theirs is changed
    /// or merged: whoever held the key keeps it; the vendor decides.
    pub collisions: Vec<Vec<StoredEmail>>,
    /// Accounts whose stored address this rule refuses (invisible characters, header syntax).
    /// They keep their old key and work by number; no mail is sent to such an address.
    pub invalid: Vec<StoredEmail>,
}

impl EmailReport {
    /// Whether there is anything for the vendor to look at.
    pub fn needs_attention(&self) -> bool {
        !self.collisions.is_empty() || !self.invalid.is_empty()
    }

    /// As kept in a ledger until it is handed to the vendor.
    pub fn encode(&self) -> Vec<u8> {
        crate::codec::pack(self)
    }

    /// What [`EmailReport::encode`] wrote; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<EmailReport> {
        crate::codec::unpack(bytes).ok()
    }
}

/// Plans moving the e-mail index of `accounts` (id, stored e-mail) from release 0.1.0's keys to
/// [`identity`]. `indexed(key)` is the account the index holds under a key today. Never merges:
/// accounts that would share a key are reported and left as they are — except that a new key
/// none of them holds goes to the first of them, so that it is taken.
pub fn plan_reindex(
    accounts: &[StoredEmail],
    indexed: impl Fn(&str) -> Option<String>,
) -> (Vec<IndexMove>, EmailReport) {
    let mut report = EmailReport::default();
    let mut by_identity: std::collections::BTreeMap<String, Vec<&StoredEmail>> = std::collections::BTreeMap::new();
    for account in accounts {
        if normalize(&account.email).is_err() {
            report.invalid.push(account.clone());
        } else {
            by_identity.entry(identity(&account.email)).or_default().push(account);
        }
    }
    let mut moves = Vec::new();
    for (to, group) in by_identity {
        let from = identity_0_1_0(&group[0].email);
        let held_by_another = indexed(&to).is_some_and(|id| id != group[0].account_id);
        if group.len() > 1 || (from != to && held_by_another) {
            let mut members: Vec<StoredEmail> = group.into_iter().cloned().collect();
            match indexed(&to) {
                Some(holder) if !members.iter().any(|m| m.account_id == holder) => {
                    members.push(StoredEmail { account_id: holder, email: to.clone() });
                }
                Some(_) => {}
                None => moves.push(IndexMove { account_id: members[0].account_id.clone(), from: None, to }),
            }
            report.collisions.push(members);
        } else if from != to {
            moves.push(IndexMove { account_id: group[0].account_id.clone(), from: Some(from), to });
            report.reindexed += 1;
        }
    }
    (moves, report)
}

fn check(email: &str) -> Result<(), &'static str> {
    if email.len() > 254 {
        return Err("longer than 254 bytes");
    }
    if email.chars().any(|c| {
        default_ignorable(c)
            || matches!(c.general_category_group(), GeneralCategoryGroup::Other | GeneralCategoryGroup::Separator)
    }) {
        return Err("it holds a space, a control or an invisible formatting character");
    }
    let (local, domain) = email.split_once('@').ok_or("no @")?;
    if domain.contains('@') {
        return Err("more than one @");
    }
    if local.is_empty() || local.len() > 64 {
        return Err("the part before @ must be 1 to 64 bytes");
    }
    if !local.split('.').all(|atom| word(atom, |c| c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c))) {
        return Err(
            "the part before @ may hold letters, digits, single dots and ! # $ % & ' * + - / = ? ^ _ ` { | } ~",
        );
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && word(label, |c| c.is_ascii_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err("the domain must be labels of letters, digits and inner hyphens joined by dots");
    }
    if labels.last().is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit())) {
        return Err("the domain must be a name, not an address");
    }
    if idna::domain_to_ascii(domain).is_err() {
        return Err("the domain is not a valid internationalised domain name");
    }
    Ok(())
}

/// Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, Unicode 15): characters
/// that render as nothing. The general-category crate has no such table; it is short and fixed.
fn default_ignorable(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// A non-empty run of characters that `ascii` allows or that are non-ASCII letters, digits and
/// marks (a mark never first).
fn word(text: &str, ascii: impl Fn(char) -> bool) -> bool {
    let mut chars = text.chars();
    let first_ok = chars.next().is_some_and(|c| {
        if c.is_ascii() {
            ascii(c)
        } else {
            matches!(c.general_category_group(), GeneralCategoryGroup::Letter | GeneralCategoryGroup::Number)
        }
    });
    first_ok
        && chars.all(|c| {
            if c.is_ascii() {
                ascii(c)
            } else {
                matches!(
                    c.general_category_group(),
                    GeneralCategoryGroup::Letter | GeneralCategoryGroup::Number | GeneralCategoryGroup::Mark
                )
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn composed_and_decomposed_forms_are_one_address() {
        let nfd = normalize("  a\u{301}lvaro@example.com ").unwrap();
        let nfc = normalize("álvaro@example.com").unwrap();
        assert_eq!(nfd, nfc);
        assert_eq!(identity(&nfd), identity("ÁLVARO@EXAMPLE.COM"));
        assert_eq!(identity("Иван@Пример.РФ"), "иван@xn--e1afmkfd.xn--p1ai");
        assert_eq!(identity("anna@ｅｘａｍｐｌｅ.com"), identity("Anna@Example.COM"));
    }

    #[test]
    fn invisible_characters_are_refused() {
        for bad in [
            "a\u{200b}b@example.com", // zero-width space
            "ab\u{ad}@example.com",   // soft hyphen
            "ab@exa\u{200d}mple.com", // zero-width joiner
            "\u{feff}ab@example.com", // byte order mark
            "ab\u{202e}@example.com", // right-to-left override
            "a b@example.com",
            "a\u{a0}b@example.com",
            "ab@exam\u{2028}ple.com",
            "a\nb@example.com",
            "ab\u{fe0f}@example.com", // variation selector
            "a\u{34f}b@example.com",  // combining grapheme joiner
            "ab\u{3164}@example.com", // Hangul filler
            "a\u{17b4}b@example.com", // Khmer inherent vowel
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_syntax_in_the_local_part_is_refused() {
        for bad in [
            "a,b@example.com",
            "a<b@example.com",
            "a>b@example.com",
            "\"a b\"@example.com",
            "a\"b@example.com",
            "a(b)@example.com",
            "a;b@example.com",
            "a:b@example.com",
            "a\\b@example.com",
            "a[b]@example.com",
            ".ab@example.com",
            "ab.@example.com",
            "a..b@example.com",
            "ab@@example.com",
            "a@b@example.com",
            "\u{301}a@example.com",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ordinary_and_international_addresses_pass() {
        for good in [
            "anna@example.com",
            "o'brien+licet@mail.example.co.uk",
            "first.last@sub-domain.example.org",
            "x!#$%&'*+-/=?^_`{|}~y@example.com",
            "иван.петров@пример.рф",
            "用户@例子.广告",
            "büro@bücher.de",
        ] {
            assert_eq!(normalize(good).unwrap(), good, "{good:?}");
        }
        for bad in ["ab@example", "ab@-example.com", "ab@example-.com", "ab@1.2.3.4", "ab@[1.2.3.4]", "ab@exa_mple.com"]
        {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }

    fn stored(id: &str, email: &str) -> StoredEmail {
        StoredEmail { account_id: id.into(), email: email.into() }
    }

    #[test]
    fn reindexing_moves_lone_accounts_and_reports_collisions_and_invalid_ones() {
        let accounts = [
            stored("acc_1", "a\u{301}@example.com"),
            stored("acc_2", "á@example.com"),
            stored("acc_3", "Иван@Пример.РФ"),
            stored("acc_4", "x<y@example.com"),
            stored("acc_5", "plain@example.com"),
            stored("acc_6", "zw\u{200b}@example.com"),
        ];
        // The index as release 0.1.0 left it: trimmed and lower-cased, no NFC.
        let index: std::collections::BTreeMap<String, String> =
            accounts.iter().map(|a| (identity_0_1_0(&a.email), a.account_id.clone())).collect();
        let (moves, report) = plan_reindex(&accounts, |key| index.get(key).cloned());
        // The Cyrillic domain moves to its ASCII form; the decomposed address collides with the
        // composed one, which holds the key.
        let cyrillic = IndexMove {
            account_id: "acc_3".into(),
            from: Some("иван@пример.рф".into()),
            to: "иван@xn--e1afmkfd.xn--p1ai".into(),
        };
        assert_eq!(moves, vec![cyrillic]);
        assert_eq!(report.reindexed, 1);
        assert_eq!(report.collisions, vec![vec![accounts[0].clone(), accounts[1].clone()]]);
        assert_eq!(report.invalid, vec![accounts[3].clone(), accounts[5].clone()]);
        // Two spellings of one address whose new key nobody holds: the first account gets it.
        let unheld = [stored("acc_7", "a\u{301}x@example.com"), stored("acc_8", "ÁX@example.com")];
        let (moves, report) = plan_reindex(&unheld, |_| None);
        assert_eq!(report.collisions, vec![unheld.to_vec()]);
        assert_eq!(moves, vec![IndexMove { account_id: "acc_7".into(), from: None, to: "áx@example.com".into() }]);
        // Alone, the decomposed address moves to its composed key.
        let (moves, report) = plan_reindex(&accounts[..1], |key| index.get(key).filter(|id| *id == "acc_1").cloned());
        assert_eq!(
            moves,
            vec![IndexMove {
                account_id: "acc_1".into(),
                from: Some(identity_0_1_0(&accounts[0].email)),
                to: "á@example.com".into()
            }]
        );
        assert_eq!(report.reindexed, 1);
    }

    proptest! {
        #[test]
        fn normalizing_is_idempotent_and_accepted_addresses_are_safe_in_headers(raw in "\\PC{0,40}@\\PC{0,20}\\.[a-zа-я]{2,4}") {
            if let Ok(email) = normalize(&raw) {
                prop_assert_eq!(normalize(&email).unwrap(), email.clone());
                prop_assert!(is_valid(&email));
                prop_assert_eq!(identity(&identity(&email)), identity(&email));
                prop_assert!(!email.chars().any(|c| "\",<>()[]\\;:\r\n ".contains(c)));
            }
        }
    }
}
