//! A simulation harness: the server's ledger and an agent's offline verdict in one process on a
//! virtual clock, so a 30-day trial expires in microseconds (quinn's `Pair`, str0m's `progress`).
#![allow(dead_code, unreachable_pub)]

pub mod net;

use chrono::{DateTime, Duration, Utc};
use licet_core::{
    Command, Entitlement, Error, Fingerprint, Host, HostCommand, Ledger, License, MemState, Outcome, ProductSettings,
    Registered, Registration, Seat, Secret, SeededEntropy, TokenSigner, TrialStarted, TrustedKeys,
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
        self.exec::<licet_core::Product>(Command::PutProduct { id: id.into(), settings }).unwrap();
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// Runs one command through the ledger's dispatcher at the current virtual time, and takes
    /// the outcome as the type the caller expects.
    pub fn exec<T: TryFrom<Outcome, Error = Error>>(&mut self, command: Command) -> Result<T, Error> {
        let (ledger, now, rng) = (&self.ledger, self.now, &mut self.rng);
        self.state.transact(|tx| ledger.handle(tx, now, rng, &command))?.try_into()
    }

    pub fn registration(email: &str, host: &Host) -> Registration {
        Registration {
            email: email.into(),
            organization: "ООО Ромашка".into(),
            contact: Some("Иван".into()),
            phone: None,
            product: PRODUCT.into(),
            host: host.clone(),
            lang: Default::default(),
        }
    }

    /// The mail queued in the ledger, oldest first.
    pub fn mails(&self) -> Vec<licet_core::Mail> {
        let mail = |(_, r): (&licet_core::RecordKey, &licet_core::Record)| match r {
            licet_core::Record::Mail(m) => Some(m.clone()),
            _ => None,
        };
        self.state.records().filter_map(mail).collect()
    }

    pub fn register(&mut self, email: &str, host: &Host) -> Result<Registered, Error> {
        self.exec(Command::Register(Sim::registration(email, host)))
    }

    /// Activates and returns the seat and its signed token.
    pub fn activate(&mut self, number: &str, host: &Host) -> Result<(Seat, String), Error> {
        self.activate_product(number, PRODUCT, host)
    }

    pub fn activate_product(&mut self, number: &str, product: &str, host: &Host) -> Result<(Seat, String), Error> {
        let seat: Seat = self.exec(Command::Activate(request(number, product, host)))?;
        let token = self.signer.issue(&seat, self.now);
        Ok((seat, token))
    }

    pub fn trial(&mut self, number: &str, product: &str, host: &Host) -> Result<TrialStarted, Error> {
        self.exec(Command::Trial(request(number, product, host)))
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
        self.issue_offer(
            product,
            count,
            licet_core::Offer::License { seats, term_days, features: None, model: Default::default() },
        )
    }

    pub fn issue_offer(
        &mut self,
        product: &str,
        count: u32,
        offer: licet_core::Offer,
    ) -> Result<Vec<licet_core::CouponCode>, Error> {
        self.exec(Command::IssueCoupons(licet_core::CouponBatch { product: product.into(), count, offer }))
    }

    /// One coupon making `offer` for the product.
    pub fn coupon(&mut self, offer: licet_core::Offer) -> String {
        self.issue_offer(PRODUCT, 1, offer).unwrap()[0].to_string()
    }

    pub fn redeem(&mut self, number: Option<&str>, coupon: &str) -> Result<License, Error> {
        let redeemed: licet_core::Redeemed =
            self.exec(Command::Redeem { number: number.map(Secret::from), coupon: coupon.into() })?;
        Ok(redeemed.license)
    }

    pub fn deactivate(&mut self, number: &str, host: &Host) -> Result<(), Error> {
        self.exec(Command::Deactivate(request(number, PRODUCT, host)))
    }

    pub fn reset(&mut self, credential: &str, binding_id: &str) -> Result<(), Error> {
        self.exec(Command::Reset { credential: credential.into(), binding_id: binding_id.into() })
    }

    /// Checks out a floating session and returns it with its signed token.
    pub fn checkout(
        &mut self,
        number: &str,
        host: &Host,
        borrow_hours: Option<u32>,
    ) -> Result<(licet_core::SessionSeat, String), Error> {
        let checkout = licet_core::Checkout {
            number: number.into(),
            product: PRODUCT.into(),
            host: host.clone(),
            user: String::new(),
            borrow_hours,
        };
        let seat: licet_core::SessionSeat = self.exec(Command::Checkout(checkout))?;
        let token = self.signer.issue_session(&seat, self.now, None);
        Ok((seat, token))
    }

    pub fn heartbeat(&mut self, number: &str, session: &str) -> Result<(licet_core::SessionSeat, String), Error> {
        let seat: licet_core::SessionSeat =
            self.exec(Command::Heartbeat { credential: number.into(), session_id: session.into() })?;
        let token = self.signer.issue_session(&seat, self.now, None);
        Ok((seat, token))
    }

    pub fn release(&mut self, number: &str, session: &str) -> Result<(), Error> {
        self.exec(Command::Release { credential: number.into(), session_id: session.into() })
    }

    pub fn account(&mut self, credential: &str) -> licet_core::Account {
        self.exec::<licet_core::AccountFound>(Command::Account { credential: credential.into() }).unwrap().account
    }
}

pub fn request(number: &str, product: &str, host: &Host) -> HostCommand {
    HostCommand { number: number.into(), product: product.into(), host: host.clone() }
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
