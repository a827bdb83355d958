//! A simulation harness: the server's ledger and an agent's offline verdict in one process on a
//! virtual clock, so a 30-day trial expires in microseconds (quinn's `Pair`, str0m's `progress`).
#![allow(dead_code, unreachable_pub)]

use chrono::{DateTime, Duration, Utc};
use licet_core::{
    Entitlement, Error, Fingerprint, Host, Ledger, License, MemState, ProductSettings, Registered, Registration, Seat,
    SeededEntropy, TokenSigner, TrustedKeys, Tx,
};

pub const PRODUCT: &str = "call-journal";

/// The server side: ledger, state, signing key, clock.
pub struct Sim {
    pub ledger: Ledger,
    pub state: MemState,
    pub rng: SeededEntropy,
    pub now: DateTime<Utc>,
    pub signer: TokenSigner,
    pub keys: TrustedKeys,
}

pub fn host(name: &str, components: &[(&str, &str)]) -> Host {
    Host::new(Fingerprint::new(components.iter().copied()).unwrap(), name, "Linux").unwrap()
}

/// A host with three components derived from `tag`.
pub fn pc(tag: &str) -> Host {
    host(tag, &[("machine-id", &format!("m-{tag}")), ("mac", &format!("a-{tag}")), ("disk", &format!("d-{tag}"))])
}

impl Sim {
    pub fn new() -> Sim {
        Sim::with_seed(1)
    }

    pub fn with_seed(seed: u64) -> Sim {
        let signer = TokenSigner::from_secret(&[7u8; 32]);
        let mut keys = TrustedKeys::new();
        keys.add(signer.public_key());
        let mut sim = Sim {
            ledger: Ledger::new("MIKO").unwrap(),
            state: MemState::new(),
            rng: SeededEntropy::new(seed),
            now: DateTime::parse_from_rfc3339("2026-01-01T09:00:00Z").unwrap().with_timezone(&Utc),
            signer,
            keys,
        };
        sim.product(PRODUCT, ProductSettings::default());
        sim
    }

    pub fn product(&mut self, id: &str, settings: ProductSettings) {
        self.run(|l, tx, _, _| l.upsert_product(tx, id, &settings)).unwrap();
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Runs one command in a transaction at the current virtual time.
    pub fn run<T>(
        &mut self,
        f: impl FnOnce(&Ledger, &mut Tx<'_>, DateTime<Utc>, &mut SeededEntropy) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let (ledger, now, rng) = (&self.ledger, self.now, &mut self.rng);
        self.state.transact(|tx| f(ledger, tx, now, rng))
    }

    pub fn register(&mut self, email: &str, host: &Host) -> Result<Registered, Error> {
        let reg = Registration {
            email: email.into(),
            organization: "ООО Ромашка".into(),
            contact: Some("Иван".into()),
            phone: None,
            product: PRODUCT.into(),
            host: host.clone(),
        };
        self.run(|l, tx, now, rng| l.register(tx, now, rng, &reg))
    }

    /// Activates and returns the grant and its signed token.
    pub fn activate(&mut self, number: &str, host: &Host) -> Result<(Seat, String), Error> {
        self.activate_product(number, PRODUCT, host)
    }

    pub fn activate_product(&mut self, number: &str, product: &str, host: &Host) -> Result<(Seat, String), Error> {
        let grant = self.run(|l, tx, now, rng| l.activate(tx, now, rng, number, product, host))?;
        let token = self.signer.issue(&grant, self.now);
        Ok((grant, token))
    }

    pub fn trial(&mut self, number: &str, product: &str, host: &Host) -> Result<(License, Seat), Error> {
        self.run(|l, tx, now, rng| l.trial(tx, now, rng, number, product, host))
    }

    pub fn coupons(&mut self, count: u32, seats: u32, term_days: Option<u32>) -> Vec<String> {
        self.issue(PRODUCT, count, seats, term_days).unwrap().iter().map(|c| c.to_string()).collect()
    }

    pub fn issue(
        &mut self,
        product: &str,
        count: u32,
        seats: u32,
        term_days: Option<u32>,
    ) -> Result<Vec<licet_core::CouponCode>, Error> {
        let batch = licet_core::CouponBatch { product: product.into(), count, seats, term_days };
        self.run(|l, tx, now, rng| l.issue_coupons(tx, now, rng, &batch))
    }

    pub fn redeem(&mut self, number: Option<&str>, coupon: &str) -> Result<License, Error> {
        self.run(|l, tx, now, rng| l.redeem(tx, now, rng, number, coupon))
    }

    pub fn deactivate(&mut self, number: &str, host: &Host) -> Result<(), Error> {
        self.run(|l, tx, _, _| l.deactivate(tx, number, PRODUCT, host))
    }

    pub fn reset(&mut self, credential: &str, binding_id: &str) -> Result<(), Error> {
        self.run(|l, tx, _, _| l.reset(tx, credential, binding_id))
    }

    pub fn account(&mut self, credential: &str) -> licet_core::Account {
        self.run(|l, tx, _, _| l.authenticate(tx, credential)).unwrap()
    }
}

/// The agent side of one host: its cached token and persisted clock high-water mark.
pub struct AgentSim {
    pub host: Host,
    pub token: Option<String>,
    pub high_water: Option<DateTime<Utc>>,
}

impl AgentSim {
    pub fn new(host: Host) -> AgentSim {
        AgentSim { host, token: None, high_water: None }
    }

    /// The offline verdict on the cached token at agent time `now`, persisting the mark.
    pub fn check_offline(
        &mut self,
        keys: &TrustedKeys,
        product: &str,
        now: DateTime<Utc>,
    ) -> Result<Entitlement, Error> {
        let Some(token) = &self.token else { return Err(Error::Token(licet_core::Code::NotActivated)) };
        let j = licet_core::verdict(keys, token, product, &self.host.fingerprint.digest(), now, self.high_water);
        self.high_water = j.high_water;
        j.result
    }
}
