//! The operating system's random source, for the adapters that mint keys and nonces.

use licet_core::Entropy;

/// Random bytes from the operating system (getrandom). Keys, ids, coupons and nonces are only as
/// unguessable as this.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        // Without a working OS random source nothing may be minted at all; there is no fallback.
        getrandom::fill(buf).expect("the operating system's random source must work");
    }
}
