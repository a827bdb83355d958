//! Hosts: fingerprints of named components and the two-thirds matching rule (SPEC §1).
//!
//! A fingerprint maps component names (`machine-id`, `mac`, `disk`, …) to values that are
//! already keyed hashes made on the customer's machine — never raw hardware ids. The rule
//! [`is_same_host`] is the only place that decides whether two fingerprints are one host; the
//! server applies it to full fingerprints, the agent to the compact [`HostDigest`] in a token.

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Most components in one fingerprint.
pub const MAX_COMPONENTS: usize = 16;
/// Longest component value, in characters.
pub const MAX_VALUE_LEN: usize = 256;
/// Longest component name, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// The matching rule: a stored fingerprint of `stored` components is the same host as a
/// presented one when at least two thirds of them (rounded up) are present with equal values.
pub fn is_same_host(stored: usize, equal: usize) -> bool {
    stored > 0 && equal * 3 >= stored * 2
}

/// A host's fingerprint: 1–16 named components.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint(BTreeMap<String, String>);

impl Fingerprint {
    /// Validates components: 1–16 of them, names of 1–64 visible ASCII characters, values of
    /// 1–256 characters.
    pub fn new<K: Into<String>, V: Into<String>>(
        components: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Fingerprint, Error> {
        let mut map = BTreeMap::new();
        for (name, value) in components {
            let (name, value) = (name.into(), value.into());
            if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::input("host.fingerprint", format!("bad component name {name:?}")));
            }
            if value.is_empty() || value.chars().count() > MAX_VALUE_LEN {
                return Err(Error::input(
                    "host.fingerprint",
                    format!("component {name} must have 1-{MAX_VALUE_LEN} characters"),
                ));
            }
            if map.insert(name, value).is_some() {
                return Err(Error::input("host.fingerprint", "a component name appears twice"));
            }
        }
        if map.is_empty() || map.len() > MAX_COMPONENTS {
            return Err(Error::input("host.fingerprint", format!("1-{MAX_COMPONENTS} components are required")));
        }
        Ok(Fingerprint(map))
    }

    /// The components, by name.
    pub fn components(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether `presented` is the host this (stored) fingerprint was taken from.
    pub fn matches(&self, presented: &Fingerprint) -> bool {
        let equal = self.0.iter().filter(|(k, v)| presented.0.get(*k) == Some(*v)).count();
        is_same_host(self.0.len(), equal)
    }

    /// One 32-byte hash per component (name and value together), in name order.
    pub fn component_hashes(&self) -> impl Iterator<Item = [u8; 32]> + '_ {
        self.0.iter().map(|(name, value)| {
            let mut h = Sha256::new();
            h.update(b"licet-host-component-v1\0");
            h.update(name.as_bytes());
            h.update([0]);
            h.update(value.as_bytes());
            h.finalize().into()
        })
    }

    /// The compact form carried in tokens.
    pub fn digest(&self) -> HostDigest {
        HostDigest(
            self.component_hashes()
                .map(|h| {
                    let mut short = [0u8; HostDigest::HASH_LEN];
                    short.copy_from_slice(&h[..HostDigest::HASH_LEN]);
                    short
                })
                .collect(),
        )
    }

    /// A fingerprint of raw machine values, each replaced by a keyed hash before it goes
    /// anywhere: HMAC-SHA256 under the vendor's `key` of the component's name and value, 32 hex
    /// characters. The key is the vendor's, not a trusted signing key, so a host stays the same
    /// host whatever keys its programs trust, in whatever order.
    pub fn keyed<K: AsRef<str>, V: AsRef<str>>(
        key: &[u8],
        raw: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Fingerprint, Error> {
        Fingerprint::new(raw.into_iter().map(|(name, value)| {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
            mac.update(b"licet-host-value-v2\0");
            mac.update(name.as_ref().as_bytes());
            mac.update(&[0]);
            mac.update(value.as_ref().as_bytes());
            (name.as_ref().to_owned(), hex::encode(&mac.finalize().into_bytes()[..16]))
        }))
    }

    /// The fingerprint release 0.1.0 made of the same raw values: a SHA-256 prefix keyed by the
    /// first trusted public key (`secret`). Newer agents present it beside their own fingerprint
    /// so that bindings made by 0.1.0 agents find their host.
    pub fn keyed_as_0_1_0<K: AsRef<str>, V: AsRef<str>>(
        secret: &[u8],
        raw: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Fingerprint, Error> {
        Fingerprint::new(raw.into_iter().map(|(name, value)| {
            let mut h = Sha256::new();
            h.update(b"licet-host-value-v1\0");
            h.update((secret.len() as u64).to_le_bytes());
            h.update(secret);
            h.update(name.as_ref().as_bytes());
            h.update([0]);
            h.update(value.as_ref().as_bytes());
            (name.as_ref().to_owned(), hex::encode(&h.finalize()[..16]))
        }))
    }
}

/// A fingerprint reduced to 8 bytes per component, so that a token stays short; matched with
/// the same rule as full fingerprints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDigest(Vec<[u8; 8]>);

impl HostDigest {
    /// Bytes kept of each component hash.
    pub const HASH_LEN: usize = 8;

    /// A digest of these component hashes (tests of the token layout).
    #[cfg(test)]
    pub(crate) fn from_hashes(hashes: Vec<[u8; 8]>) -> HostDigest {
        HostDigest(hashes)
    }

    /// Whether `presented` is the host this digest was made from.
    pub fn matches(&self, presented: &Fingerprint) -> bool {
        self.matches_digest(&presented.digest())
    }

    /// Whether the host whose digest is `presented` is the one this digest was made from. An
    /// agent computes its own digest once and checks every token against it.
    pub fn matches_digest(&self, presented: &HostDigest) -> bool {
        let equal = self.0.iter().filter(|h| presented.0.contains(h)).count();
        is_same_host(self.0.len(), equal)
    }

    /// Number of components.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the digest has no component (never true of a digest made from a fingerprint).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(pairs: &[(&str, &str)]) -> Fingerprint {
        Fingerprint::new(pairs.iter().map(|&(k, v)| (k, v))).unwrap()
    }

    #[test]
    fn the_threshold_is_two_thirds_rounded_up() {
        assert!(is_same_host(3, 2));
        assert!(!is_same_host(3, 1));
        assert!(is_same_host(1, 1));
        assert!(!is_same_host(1, 0));
        assert!(is_same_host(2, 2));
        assert!(!is_same_host(2, 1));
        assert!(is_same_host(4, 3));
        assert!(!is_same_host(4, 2));
        assert!(is_same_host(6, 4));
        assert!(!is_same_host(6, 3));
        assert!(!is_same_host(0, 0));
    }

    #[test]
    fn one_changed_component_of_three_keeps_the_host() {
        let stored = fp(&[("machine-id", "a"), ("mac", "b"), ("disk", "c")]);
        let new_nic = fp(&[("machine-id", "a"), ("mac", "B2"), ("disk", "c")]);
        let new_pc = fp(&[("machine-id", "x"), ("mac", "y"), ("disk", "c")]);
        assert!(stored.matches(&new_nic));
        assert!(!stored.matches(&new_pc));
        assert!(stored.digest().matches(&new_nic));
        assert!(!stored.digest().matches(&new_pc));
        // A value under another name is not the same component.
        let renamed = fp(&[("disk", "a"), ("mac", "b"), ("x", "c")]);
        assert!(!stored.matches(&renamed));
        assert!(!stored.digest().matches(&renamed));
    }

    #[test]
    fn limits_are_enforced() {
        assert!(Fingerprint::new(Vec::<(String, String)>::new()).is_err());
        assert!(Fingerprint::new((0..17).map(|i| (format!("c{i}"), "v"))).is_err());
        assert!(Fingerprint::new((0..16).map(|i| (format!("c{i}"), "v"))).is_ok());
        assert!(Fingerprint::new([("a", "x".repeat(257))]).is_err());
        assert!(Fingerprint::new([("a", "x".repeat(256))]).is_ok());
        assert!(Fingerprint::new([("", "x")]).is_err());
        assert!(Fingerprint::new([("a b", "x")]).is_err());
        assert!(Fingerprint::new([("a", "")]).is_err());
    }

    #[test]
    fn keyed_values_depend_on_the_key_name_and_value_only() {
        let raw = [("mac", "00:11"), ("disk", "sda")];
        let a = Fingerprint::keyed(b"one", raw).unwrap();
        assert!(a.components().values().all(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())));
        assert_ne!(a, Fingerprint::keyed(b"two", raw).unwrap());
        assert_eq!(a, Fingerprint::keyed(b"one", raw).unwrap());
        assert_ne!(
            a.components()["mac"],
            Fingerprint::keyed(b"one", [("disk", "00:11")]).unwrap().components()["disk"]
        );
        // Not release 0.1.0's scheme, which stays available for matching its bindings.
        assert_ne!(a, Fingerprint::keyed_as_0_1_0(b"one", raw).unwrap());
    }

    #[test]
    fn release_0_1_0s_hashes_are_reproduced() {
        // What 0.1.0's agent printed for this machine (tests/fixtures/0.1.0/facts.json).
        let key = b"8c7d97cf28de56818f8f613f9f49198d0b86d5bb3eb96320d0ae9704c0307943";
        let raw =
            [("hostname", "vm"), ("mac", "02:fc:00:00:00:01"), ("machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4")];
        let fp = Fingerprint::keyed_as_0_1_0(key, raw).unwrap();
        assert_eq!(fp.components()["hostname"], "1919b00ac2b468799a7aadf87859494e");
        assert_eq!(fp.components()["mac"], "cd159b790033b01183e2630c775fc9b5");
        assert_eq!(fp.components()["machine-id"], "6f49bbaae82967ac7bcd618378b1e4d6");
    }
}
