//! Per-client-IP limits on failed credentials, registrations and recoveries (SPEC §4, 1062).
//! Successful checks are never counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use licet_core::Code;
use licet_store::PgStore;

use crate::error::ApiError;

const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked clients, expired windows are swept out.
const SWEEP_AT: usize = 10_000;

/// Where the windows are kept: in this process, or in the cluster's database so that every
/// node counts the same client together.
#[derive(Debug)]
pub(crate) enum Limiter {
    /// This process's windows.
    Local(RateLimiter),
    /// The database's windows.
    Shared {
        /// The database.
        db: Arc<PgStore>,
        /// Events per client IP and minute; 0 = off.
        per_minute: u32,
    },
}

fn rate_limited(wait: u64) -> ApiError {
    ApiError { retry_after: Some(wait), ..ApiError::new(Code::RateLimited) }
}

impl Limiter {
    /// 1062 (with its wait) when `ip` has used up its minute.
    pub(crate) async fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        match self {
            Limiter::Local(limiter) => limiter.check(ip).map_err(rate_limited),
            Limiter::Shared { per_minute: 0, .. } => Ok(()),
            Limiter::Shared { db, per_minute } => db.rate_check(ip, *per_minute).await?.map_err(rate_limited),
        }
    }

    /// Counts one event for `ip`; 1062 (with its wait) when it went past the minute's limit.
    /// Counting and deciding are one step, so concurrent requests cannot all take the last place.
    pub(crate) async fn spend(&self, ip: IpAddr) -> Result<(), ApiError> {
        match self {
            Limiter::Local(limiter) => limiter.spend(ip).map_err(rate_limited),
            Limiter::Shared { per_minute: 0, .. } => Ok(()),
            Limiter::Shared { db, per_minute } => db.rate_spend(ip, *per_minute).await?.map_err(rate_limited),
        }
    }
}

/// Fixed one-minute windows per client IP.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    /// At most `per_minute` counted events per IP and minute; 0 turns limiting off.
    pub(crate) fn new(per_minute: u32) -> RateLimiter {
        RateLimiter { per_minute, windows: Mutex::new(HashMap::new()) }
    }

    /// `Err(seconds to wait)` if `ip` has used up its minute.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get(&ip) {
            Some(&(start, count)) => {
                let elapsed = start.elapsed();
                if elapsed < WINDOW && count >= self.per_minute {
                    Err(WINDOW.saturating_sub(elapsed).as_secs().max(1))
                } else {
                    Ok(())
                }
            }
            None => Ok(()),
        }
    }

    /// Counts one event for `ip` and says whether it stayed within the limit, under one lock.
    pub(crate) fn spend(&self, ip: IpAddr) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (start, _)| start.elapsed() < WINDOW);
        }
        let entry = windows.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
        if entry.1 > self.per_minute { Err(WINDOW.saturating_sub(entry.0.elapsed()).as_secs().max(1)) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_ip_and_can_be_turned_off() {
        let limiter = RateLimiter::new(3);
        let (a, b) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
            assert!(limiter.spend(a).is_ok());
        }
        let wait = limiter.check(a).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(limiter.spend(a).is_err(), "the fourth event of the minute");
        assert!(limiter.check(b).is_ok());
        let off = RateLimiter::new(0);
        for _ in 0..100 {
            assert!(off.spend(a).is_ok());
        }
        assert!(off.check(a).is_ok());
    }
}
