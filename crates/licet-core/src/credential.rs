//! Registration numbers and coupons: `VENDOR-XXXXX-XXXXX-XXXXX-XXXXX` and `VENDORUPD-…`.
//!
//! A key body is 20 Crockford base32 symbols: 18 random (90 bits) and 2 check symbols. The check
//! symbols make the body a codeword of a distance-3 code over GF(32) (a shortened Reed–Solomon
//! code with roots α and α²), so **every** single-symbol substitution and every transposition of
//! two different adjacent symbols — at most two changed positions — leaves a non-zero syndrome and
//! is rejected locally. Numbers and coupons use different syndrome targets, so a coupon's body is
//! not a valid number and vice versa.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::entropy::Entropy;
use crate::error::{Code, Error};

/// Crockford base32: digits and upper-case letters without `I L O U`.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Symbols in a key body.
pub const BODY_LEN: usize = 20;
/// Random symbols in a key body (5 bits each: 90 bits).
const RANDOM_LEN: usize = 18;
/// The suffix that turns a vendor prefix into a coupon prefix.
const COUPON_SUFFIX: &str = "UPD";
/// Longest vendor prefix accepted.
pub const MAX_PREFIX_LEN: usize = 16;

/// GF(32) with the primitive polynomial x⁵ + x² + 1.
mod gf32 {
    const POLY: u8 = 0b10_0101;

    const fn tables() -> ([u8; 31], [u8; 32]) {
        let mut exp = [0u8; 31];
        let mut log = [0u8; 32];
        let mut x: u8 = 1;
        let mut i = 0;
        while i < 31 {
            exp[i] = x;
            log[x as usize] = i as u8;
            x <<= 1;
            if x & 0b10_0000 != 0 {
                x ^= POLY;
            }
            i += 1;
        }
        (exp, log)
    }

    const TABLES: ([u8; 31], [u8; 32]) = tables();

    /// α^k.
    pub(super) const fn pow(k: usize) -> u8 {
        TABLES.0[k % 31]
    }

    pub(super) fn mul(a: u8, b: u8) -> u8 {
        if a == 0 || b == 0 {
            return 0;
        }
        pow(TABLES.1[a as usize] as usize + TABLES.1[b as usize] as usize)
    }

    pub(super) fn inv(a: u8) -> u8 {
        debug_assert!(a != 0, "zero has no inverse");
        pow(31 - TABLES.1[a as usize] as usize)
    }
}

/// What a key is for; each kind has its own syndrome target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Number,
    Coupon,
}

impl Kind {
    /// The syndromes (S1, S2) a valid body of this kind has.
    fn target(self) -> (u8, u8) {
        match self {
            Kind::Number => (0, 0),
            Kind::Coupon => (gf32::pow(3), gf32::pow(11)),
        }
    }

    fn error(self) -> Error {
        match self {
            Kind::Number => Error::Credential(Code::InvalidRegistrationNumber),
            Kind::Coupon => Error::Credential(Code::InvalidCoupon),
        }
    }
}

/// S1 = Σ cᵢ·αⁱ and S2 = Σ cᵢ·α²ⁱ over the body's symbol values.
fn syndromes(body: &[u8; BODY_LEN]) -> (u8, u8) {
    body.iter()
        .enumerate()
        .fold((0, 0), |(s1, s2), (i, &c)| (s1 ^ gf32::mul(c, gf32::pow(i)), s2 ^ gf32::mul(c, gf32::pow(2 * i))))
}

/// Fills positions 18 and 19 so that the body's syndromes equal `kind`'s target.
fn seal(body: &mut [u8; BODY_LEN], kind: Kind) {
    body[RANDOM_LEN] = 0;
    body[RANDOM_LEN + 1] = 0;
    let (s1, s2) = syndromes(body);
    let (t1, t2) = kind.target();
    // Solve x·a + y·b = r1, x·c + y·d = r2 for the two check symbols (x at 18, y at 19).
    let (r1, r2) = (s1 ^ t1, s2 ^ t2);
    let (a, b) = (gf32::pow(RANDOM_LEN), gf32::pow(RANDOM_LEN + 1));
    let (c, d) = (gf32::pow(2 * RANDOM_LEN), gf32::pow(2 * RANDOM_LEN + 2));
    let det_inv = gf32::inv(gf32::mul(a, d) ^ gf32::mul(b, c));
    body[RANDOM_LEN] = gf32::mul(gf32::mul(r1, d) ^ gf32::mul(r2, b), det_inv);
    body[RANDOM_LEN + 1] = gf32::mul(gf32::mul(a, r2) ^ gf32::mul(c, r1), det_inv);
}

/// The value of one body symbol, with Crockford's aliases (`O`→0, `I`/`L`→1).
fn symbol_value(ch: u8) -> Option<u8> {
    let ch = match ch.to_ascii_uppercase() {
        b'O' => b'0',
        b'I' | b'L' => b'1',
        other => other,
    };
    ALPHABET.iter().position(|&a| a == ch).map(|p| p as u8)
}

/// Checks a vendor prefix: 1–16 ASCII letters or digits, starting with a letter.
pub fn validate_prefix(prefix: &str) -> Result<(), Error> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX_LEN
        && prefix.as_bytes()[0].is_ascii_uppercase()
        && prefix.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::input("vendor_prefix", "1-16 upper-case letters or digits, starting with a letter"))
    }
}

/// A key's parsed parts; shared by [`RegistrationNumber`] and [`CouponCode`].
#[derive(Clone, PartialEq, Eq, Hash)]
struct Serial {
    vendor: String,
    body: [u8; BODY_LEN],
}

impl Serial {
    fn generate(vendor: &str, kind: Kind, entropy: &mut dyn Entropy) -> Serial {
        let mut random = [0u8; 12];
        entropy.fill(&mut random);
        let bits = random.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
        let mut body = [0u8; BODY_LEN];
        for (i, symbol) in body.iter_mut().take(RANDOM_LEN).enumerate() {
            *symbol = ((bits >> (5 * i)) & 0x1f) as u8;
        }
        seal(&mut body, kind);
        Serial { vendor: vendor.to_owned(), body }
    }

    fn parse(text: &str, kind: Kind) -> Result<Serial, Error> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
        let (prefix, rest) = compact.split_once('-').ok_or_else(|| kind.error())?;
        let vendor = match kind {
            Kind::Number => prefix,
            Kind::Coupon => prefix.strip_suffix(COUPON_SUFFIX).ok_or_else(|| kind.error())?,
        };
        validate_prefix(vendor).map_err(|_| kind.error())?;
        let mut body = [0u8; BODY_LEN];
        let mut n = 0;
        for ch in rest.bytes().filter(|&b| b != b'-') {
            let slot = body.get_mut(n).ok_or_else(|| kind.error())?;
            *slot = symbol_value(ch).ok_or_else(|| kind.error())?;
            n += 1;
        }
        if n != BODY_LEN || syndromes(&body) != kind.target() {
            return Err(kind.error());
        }
        Ok(Serial { vendor: vendor.to_owned(), body })
    }

    /// The 20 body symbols without separators.
    fn body(&self) -> String {
        self.body.iter().map(|&v| ALPHABET[v as usize] as char).collect()
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, suffix: &str, mask: bool) -> fmt::Result {
        write!(f, "{}{}", self.vendor, suffix)?;
        for (group, chunk) in self.body.chunks(5).enumerate() {
            f.write_str("-")?;
            for &v in chunk {
                let hidden = mask && group < BODY_LEN / 5 - 1;
                f.write_str(if hidden {
                    "*"
                } else {
                    std::str::from_utf8(&ALPHABET[v as usize..=v as usize]).expect("alphabet is ASCII")
                })?;
            }
        }
        Ok(())
    }
}

/// Text given as a credential — a registration number, a redeemed coupon, an admin token — before
/// it is checked. Commands carry it so that they can be logged and replayed; its `Debug` shows
/// only the last five characters, so a command in a log line never leaks the credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps credential text as given.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The text, to be checked or sent: never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Secret {
        Secret::new(text)
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Secret {
        Secret(text)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail: String = self.0.chars().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        write!(f, "Secret(…{tail})")
    }
}

macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $suffix:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(Serial);

        impl $name {
            /// A new random key for this vendor prefix; 90 bits come from `entropy`.
            pub fn generate(vendor_prefix: &str, entropy: &mut dyn Entropy) -> Self {
                $name(Serial::generate(vendor_prefix, $kind, entropy))
            }

            /// Parses user input: case-insensitive, spaces ignored, `O`→`0`, `I`/`L`→`1`. A bad
            /// format or check symbol is refused here, without any lookup.
            pub fn parse(text: &str) -> Result<Self, Error> {
                Serial::parse(text, $kind).map($name)
            }

            /// The vendor prefix (without `UPD` for coupons).
            pub fn vendor(&self) -> &str {
                &self.0.vendor
            }

            /// The canonical 20-symbol body, the key's identity within a deployment.
            pub fn body(&self) -> String {
                self.0.body()
            }

            /// The key with all but its last group hidden, for logs and pages.
            pub fn masked(&self) -> String {
                struct Masked<'a>(&'a Serial);
                impl fmt::Display for Masked<'_> {
                    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        self.0.write(f, $suffix, true)
                    }
                }
                Masked(&self.0).to_string()
            }
        }

        impl fmt::Display for $name {
            /// The canonical form, in full: it is a credential, so display it only to its owner.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write(f, $suffix, false)
            }
        }

        impl fmt::Debug for $name {
            /// Masked: a key in a debug print or a log line must not leak the credential.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.masked())
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }
    };
}

key_type!(
    /// An account's registration number, `VENDOR-XXXXX-XXXXX-XXXXX-XXXXX`: the customer's credential.
    RegistrationNumber,
    Kind::Number,
    ""
);
key_type!(
    /// A single-use coupon, `VENDORUPD-XXXXX-XXXXX-XXXXX-XXXXX`, that adds a license when redeemed.
    CouponCode,
    Kind::Coupon,
    COUPON_SUFFIX
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    fn keys(n: usize) -> Vec<RegistrationNumber> {
        let mut rng = SeededEntropy::new(7);
        (0..n).map(|_| RegistrationNumber::generate("MIKO", &mut rng)).collect()
    }

    #[test]
    fn generated_keys_round_trip_in_the_seed_format() {
        for key in keys(200) {
            let text = key.to_string();
            assert_eq!(text.len(), "MIKO-XXXXX-XXXXX-XXXXX-XXXXX".len());
            assert!(text.starts_with("MIKO-"));
            assert_eq!(RegistrationNumber::parse(&text).unwrap(), key);
            assert_eq!(RegistrationNumber::parse(&text.to_lowercase()).unwrap(), key);
            let spaced = text.replace('-', " - ");
            assert_eq!(RegistrationNumber::parse(&spaced).unwrap(), key);
        }
    }

    #[test]
    fn crockford_aliases_are_accepted() {
        for key in keys(200) {
            let text = key.to_string();
            let aliased = format!("MIKO-{}", text[5..].replace('0', "o").replace('1', "l"));
            assert_eq!(RegistrationNumber::parse(&aliased).unwrap(), key);
            let aliased = format!("MIKO-{}", text[5..].replace('1', "I"));
            assert_eq!(RegistrationNumber::parse(&aliased).unwrap(), key);
        }
    }

    /// Exhaustive: for 300 keys, every position × every other symbol, and every adjacent swap.
    #[test]
    fn every_substitution_and_adjacent_transposition_is_detected() {
        let mut rng = SeededEntropy::new(11);
        let mut checked = 0usize;
        for i in 0..300 {
            let (text, kind_err) = if i % 2 == 0 {
                (RegistrationNumber::generate("LICET", &mut rng).to_string(), Code::InvalidRegistrationNumber)
            } else {
                (CouponCode::generate("LICET", &mut rng).to_string(), Code::InvalidCoupon)
            };
            let parse = |t: &str| -> Result<(), Error> {
                if i % 2 == 0 { RegistrationNumber::parse(t).map(|_| ()) } else { CouponCode::parse(t).map(|_| ()) }
            };
            parse(&text).expect("generated key parses");
            let dash = text.find('-').unwrap();
            let body_positions: Vec<usize> =
                text.char_indices().filter(|&(p, c)| p > dash && c != '-').map(|(p, _)| p).collect();
            assert_eq!(body_positions.len(), BODY_LEN);
            for &p in &body_positions {
                for &sym in ALPHABET.iter() {
                    if sym == text.as_bytes()[p] {
                        continue;
                    }
                    let mut bytes = text.clone().into_bytes();
                    bytes[p] = sym;
                    let changed = String::from_utf8(bytes).unwrap();
                    assert_eq!(parse(&changed), Err(Error::Credential(kind_err)), "{text} -> {changed}");
                    checked += 1;
                }
            }
            for w in body_positions.windows(2) {
                let (a, b) = (w[0], w[1]);
                if text.as_bytes()[a] == text.as_bytes()[b] {
                    continue;
                }
                let mut bytes = text.clone().into_bytes();
                bytes.swap(a, b);
                let changed = String::from_utf8(bytes).unwrap();
                assert_eq!(parse(&changed), Err(Error::Credential(kind_err)), "{text} -> {changed}");
                checked += 1;
            }
            // Transpositions across a group separator ("…AB-CD…" → "…AC-BD…" is no swap of
            // adjacent symbols, but "…B-C…" typed as "…C-B…" is): covered by body_positions windows.
        }
        assert!(checked > 300 * 600);
    }

    #[test]
    fn numbers_and_coupons_do_not_cross() {
        let mut rng = SeededEntropy::new(3);
        for _ in 0..100 {
            let number = RegistrationNumber::generate("LICET", &mut rng);
            let as_coupon = format!("LICETUPD-{}", &number.to_string()[6..]);
            assert_eq!(CouponCode::parse(&as_coupon), Err(Error::Credential(Code::InvalidCoupon)));
            let coupon = CouponCode::generate("LICET", &mut rng);
            assert!(coupon.to_string().starts_with("LICETUPD-"));
            let as_number = format!("LICET-{}", &coupon.to_string()[9..]);
            assert_eq!(RegistrationNumber::parse(&as_number), Err(Error::Credential(Code::InvalidRegistrationNumber)));
            assert_eq!(
                RegistrationNumber::parse(&coupon.to_string()).map(|_| ()),
                Err(Error::Credential(Code::InvalidRegistrationNumber))
            );
        }
    }

    #[test]
    fn malformed_input_is_refused_not_panicked() {
        for bad in [
            "",
            "-",
            "MIKO",
            "MIKO-",
            "MIKO-12345",
            "MIKO-UUUUU-UUUUU-UUUUU-UUUUU",
            "Ж-12345-12345-12345-12345",
            "-00000-00000-00000-00000",
            "MIKO-00000-00000-00000-00000-00000",
            "MIKO-0000é-00000-00000-00000",
        ] {
            assert!(RegistrationNumber::parse(bad).is_err(), "{bad}");
            assert!(CouponCode::parse(bad).is_err(), "{bad}");
        }
        // The all-zero body is a valid number (syndromes zero) but not a valid coupon.
        assert!(RegistrationNumber::parse("MIKO-00000-00000-00000-00000").is_ok());
    }

    #[test]
    fn masking_hides_all_but_the_last_group() {
        let key = keys(1).remove(0);
        let text = key.to_string();
        let masked = key.masked();
        assert_eq!(masked, format!("MIKO-*****-*****-*****-{}", &text[text.len() - 5..]));
        assert_eq!(format!("{key:?}"), format!("RegistrationNumber({masked})"));
        let secret = Secret::from(text.as_str());
        assert_eq!(format!("{secret:?}"), format!("Secret(…{})", &text[text.len() - 5..]));
        assert_eq!(secret.expose(), text);
    }
}
