//! The agent's real policy ([`licet_core::agent::Policy`]) on a virtual clock against simulated
//! servers that answer, fail, lie or break: what the `licet-agent` crate does with real HTTP and
//! a real disk, done here in memory so that days pass in microseconds.

use std::time::Duration as Mono;

use chrono::Duration;
use licet_core::agent::{Ask, AskKind, Failure, Memory, Policy, Reply, Step, Verdict};
use licet_core::{Checkout, Command, Host, HostCommand, Seat, SeededEntropy, SessionSeat, TokenFormat, TrustedKeys};

use super::Sim;

/// How a simulated server behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answers as a licet server does.
    Up,
    /// Never answers (connection refused, timeout, 5xx).
    Down,
    /// Answers refusals without their signed proof (an old server, or someone in the path).
    Unsigned,
    /// Answers 200 with a token that does not verify.
    BrokenToken,
    /// Answers 200 with a valid token of another host's.
    OtherHost,
    /// Answers as `Up`, its tokens granting these features.
    Features(Vec<String>),
    /// Answers as `Up` in release 0.1.0's token format.
    Legacy,
    /// Answers with a valid token of this host that does not carry the request's nonce: an older
    /// server, or someone replaying the latest token the server issued.
    NoNonce,
    /// Answers with this token, whatever was asked (a recorded answer replayed).
    Recorded(String),
    /// Forwards the request with another registration number (someone in the network path
    /// fishing for a genuine signed refusal).
    AlteredNumber,
}

/// The servers of an agent's list, in order, all in front of one ledger.
pub struct Net {
    pub servers: Vec<Mode>,
}

impl Net {
    pub fn new(servers: &[Mode]) -> Net {
        Net { servers: servers.to_vec() }
    }

    /// Server `ask.server`'s reply.
    pub fn serve(&self, sim: &mut Sim, ask: &Ask, host: &Host) -> Reply {
        let mode = &self.servers[ask.server];
        if *mode == Mode::Down {
            return Reply::Fault { reason: "connection refused".into() };
        }
        let number = match mode {
            Mode::AlteredNumber => "MIKO-00000-00000-00000-00000".to_owned(),
            _ => ask.number.expose().to_owned(),
        };
        let session = match &ask.kind {
            AskKind::Activate => None,
            AskKind::Checkout { borrow_hours, .. } => Some(Command::Checkout(Checkout {
                number: number.as_str().into(),
                product: ask.product.clone(),
                host: host.clone(),
                user: String::new(),
                borrow_hours: *borrow_hours,
            })),
            AskKind::Heartbeat { session, .. } => {
                Some(Command::Heartbeat { credential: number.as_str().into(), session_id: session.clone() })
            }
        };
        if let Some(command) = session {
            return match sim.exec::<SessionSeat>(command) {
                Ok(seat) => Reply::Granted { token: sim.signer.issue_session(&seat, sim.now, Some(ask.nonce)) },
                Err(e) => self.refusal(sim, ask, host, &number, e.code(), e.to_string()),
            };
        }
        let request = HostCommand { number: number.as_str().into(), product: ask.product.clone(), host: host.clone() };
        match sim.exec::<Seat>(Command::Activate(request)) {
            Ok(seat) => {
                let fresh = Some(ask.nonce);
                let token = match mode {
                    Mode::BrokenToken => "not-a-token".to_owned(),
                    Mode::OtherHost => {
                        let other = super::pc("somebody-else");
                        let mut claims = licet_core::Claims::for_seat(&seat, sim.signer.kid(), sim.now);
                        claims.host = other.fingerprint.digest();
                        sim.signer.sign(&claims, TokenFormat::V2)
                    }
                    Mode::Features(features) => {
                        let mut claims = licet_core::Claims::for_seat(&seat, sim.signer.kid(), sim.now);
                        claims.features.clone_from(features);
                        claims.nonce = fresh;
                        sim.signer.sign(&claims, TokenFormat::V2)
                    }
                    Mode::Legacy => sim.signer.issue_as(&seat, sim.now, TokenFormat::V1, None),
                    Mode::NoNonce => sim.signer.issue_as(&seat, sim.now, TokenFormat::V2, None),
                    _ => sim.signer.issue_as(&seat, sim.now, TokenFormat::V2, fresh),
                };
                let token = match mode {
                    Mode::Recorded(recorded) => recorded.clone(),
                    _ => token,
                };
                Reply::Granted { token }
            }
            Err(e) => self.refusal(sim, ask, host, &number, e.code(), e.to_string()),
        }
    }

    /// A refusal, signed when it is definitive (unless the server is `Unsigned`).
    fn refusal(
        &self,
        sim: &Sim,
        ask: &Ask,
        host: &Host,
        number: &str,
        code: licet_core::Code,
        message: String,
    ) -> Reply {
        let proof = (code.is_definitive() && self.servers[ask.server] != Mode::Unsigned).then(|| {
            sim.signer.sign_refusal(code, &ask.product, &host.fingerprint.digest(), number, sim.now, ask.nonce)
        });
        Reply::Refused { code, message, proof }
    }
}

/// One customer machine: the policy, what it has on disk, and its clocks.
pub struct Machine {
    pub host: Host,
    pub policy: Policy,
    pub disk: Memory,
    /// The machine's wall clock runs this far from the server's.
    pub skew: Duration,
    /// The monotonic clock.
    pub mono: Mono,
    /// The servers asked by the latest check, in order.
    pub asked: Vec<usize>,
    rng: SeededEntropy,
}

impl Machine {
    pub fn new(host: Host, keys: &TrustedKeys, servers: usize) -> Machine {
        let old = host.legacy.as_ref().map(licet_core::Fingerprint::digest);
        let policy = Policy::new(keys.clone(), host.fingerprint.digest(), old, servers);
        Machine {
            host,
            policy,
            disk: Memory::default(),
            skew: Duration::zero(),
            mono: Mono::ZERO,
            asked: Vec::new(),
            rng: SeededEntropy::new(7),
        }
    }

    /// Lets time pass on both of the machine's clocks and the server's.
    pub fn wait(&mut self, sim: &mut Sim, d: Duration) {
        sim.advance(d);
        self.mono += d.to_std().unwrap();
    }

    /// Writes what the policy says must reach the disk.
    fn persist(&mut self) {
        if let Some(change) = self.policy.poll_persist() {
            change.apply(&mut self.disk);
        }
    }

    /// A restart of the program: a new policy that knows only the disk.
    pub fn restart(&mut self, keys: &TrustedKeys, servers: usize) {
        let old = self.host.legacy.as_ref().map(licet_core::Fingerprint::digest);
        self.policy = Policy::new(keys.clone(), self.host.fingerprint.digest(), old, servers);
        self.policy.load(&self.disk);
    }

    /// Enters the number, as `set-number` does after the server confirmed it.
    pub fn set_number(&mut self, number: &str) {
        self.policy.set_number(Some(number.to_owned()));
        self.persist();
    }

    /// Caches the token a registration or trial answered with.
    pub fn take_token(&mut self, sim: &Sim, token: &str) {
        let now = sim.now + self.skew;
        self.policy.handle_token(now, super::PRODUCT, token, [0; 16]).unwrap();
        self.persist();
    }

    /// A license check of `product` needing `features`, driven to its answer.
    pub fn check_features(
        &mut self,
        sim: &mut Sim,
        net: &Net,
        product: &str,
        features: &[&str],
    ) -> Result<Verdict, Failure> {
        let features: Vec<String> = features.iter().map(|f| f.to_string()).collect();
        self.asked.clear();
        let step = self.policy.handle_check(sim.now + self.skew, self.mono, product, &features, &mut self.rng);
        self.drive(sim, net, step)
    }

    /// A checkout of a floating session of the product, driven to its answer.
    pub fn checkout(&mut self, sim: &mut Sim, net: &Net, borrow_hours: Option<u32>) -> Result<Verdict, Failure> {
        self.asked.clear();
        let step = self.policy.handle_checkout(self.mono, super::PRODUCT, borrow_hours, None, &mut self.rng);
        self.drive(sim, net, step)
    }

    /// Sends what the policy asks until it answers.
    fn drive(&mut self, sim: &mut Sim, net: &Net, mut step: Step) -> Result<Verdict, Failure> {
        loop {
            self.persist();
            match step {
                Step::Answer(result) => return result,
                Step::Ask(ask) => {
                    self.asked.push(ask.server);
                    // A check's heartbeat refused is followed by a checkout on the same server.
                    assert!(self.asked.len() <= 2 * net.servers.len(), "asked more servers than the list has");
                    let reply = net.serve(sim, &ask, &self.host);
                    step = self.policy.handle_reply(sim.now + self.skew, self.mono, ask, reply);
                }
            }
        }
    }

    pub fn check(&mut self, sim: &mut Sim, net: &Net) -> Result<Verdict, Failure> {
        self.check_features(sim, net, super::PRODUCT, &[])
    }
}
