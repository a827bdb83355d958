//! The agent's commands that talk to the server: register, enter a number, trial, coupons,
//! deactivation, forgetting, listing licenses. Each goes to the servers of the list in order,
//! the next one on a server fault, until one answers.

use licet_core::{Code, CouponCode, OfflineRequest, RegistrationNumber, TokenFormat};
use licet_store::OsEntropy;
use licet_wire::{
    AccountObject, Empty, GrantAnswer, HostRequest, LicenseAnswer, LicenseObject, Nonce, RedeemRequest, RegisterAnswer,
    RegisterRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::agent::{Agent, Grant, Source};
use crate::client::{CallError, Client};
use crate::error::Error;

/// What a customer fills in to register.
#[derive(Clone, Debug, Default)]
pub struct RegistrationForm {
    /// E-mail; the number is mailed there.
    pub email: String,
    /// Organisation.
    pub organization: String,
    /// Contact person.
    pub contact: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// The product to try.
    pub product: String,
    /// The language of the account's mail (the server's default, Russian, when `None`).
    pub lang: Option<licet_core::Lang>,
}

impl Agent {
    /// Calls the first server of the list that answers (a refusal is an answer; a fault is not).
    fn call<B: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: Option<&B>,
    ) -> Result<A, Error> {
        self.first_answer(|client| client.call(path, bearer, body))
    }

    /// Sends `request` to the servers of the list in order until one answers (a refusal is an
    /// answer; a fault is not).
    pub(crate) fn first_answer<A>(&self, request: impl Fn(&Client) -> Result<A, CallError>) -> Result<A, Error> {
        let mut fault = "no license server is configured".to_owned();
        for server in 0..self.server_count() {
            match request(self.client(server)?) {
                Ok(answer) => return Ok(answer),
                Err(CallError::Fault(reason)) => fault = reason,
                Err(refused) => return Err(refused.into()),
            }
        }
        Err(Error::Unreachable(fault))
    }

    /// Caches the token of a command the server has already carried out, answering the request
    /// that carried `nonce`. Its offline verdict does not undo the command (a bad local clock
    /// gives 3004 at the next check, not now), so only a failure to store it is an error.
    fn keep_token(&self, product: &str, token: &str, nonce: Nonce) -> Result<(), Error> {
        let mut st = self.state()?;
        let _verdict = st.policy.handle_token(self.now(), product, token, nonce.0);
        self.persist(&mut st, false)
    }

    fn nonce() -> Nonce {
        let mut nonce = [0u8; 16];
        licet_core::Entropy::fill(&mut OsEntropy, &mut nonce);
        Nonce(nonce)
    }

    fn require_number(&self, missing: Code) -> Result<String, Error> {
        self.number()?.ok_or(Error::local(missing))
    }

    fn host_request(&self, number: String, product: &str) -> HostRequest {
        HostRequest {
            registration_number: number,
            product: product.to_owned(),
            host: self.host_json(),
            token_format: Some(TokenFormat::LATEST_MARKER),
            nonce: Some(Agent::nonce()),
        }
    }

    /// Stores (or forgets) the number, durably; tokens of another number go with it.
    fn store_number(&self, number: Option<String>) -> Result<(), Error> {
        let mut st = self.state()?;
        // Sessions of another number are not this agent's to heartbeat or release.
        if st.policy.number() != number.as_deref() {
            self.opened().clear();
        }
        st.policy.set_number(number);
        self.persist(&mut st, false)
    }

    /// Registers a new account from this host: its number is stored and its trial's token
    /// cached. Returns the number (in full) and the trial.
    ///
    /// ```no_run
    /// # let agent = licet_agent::Agent::new(licet_agent::AgentConfig::new("https://lic.example.com", "/tmp/c"))?;
    /// let form = licet_agent::RegistrationForm {
    ///     email: "it@example.com".into(),
    ///     organization: "Example LLC".into(),
    ///     product: "call-journal".into(),
    ///     ..Default::default()
    /// };
    /// let (number, trial) = agent.register(&form)?;
    /// println!("keep this number: {number}; trial until {:?}", trial.expires_at);
    /// # Ok::<(), licet_agent::Error>(())
    /// ```
    pub fn register(&self, form: &RegistrationForm) -> Result<(String, LicenseObject), Error> {
        let request = RegisterRequest {
            email: form.email.clone(),
            organization: form.organization.clone(),
            contact: form.contact.clone(),
            phone: form.phone.clone(),
            product: form.product.clone(),
            lang: form.lang,
            host: self.host_json(),
            token_format: Some(TokenFormat::LATEST_MARKER),
            nonce: Some(Agent::nonce()),
        };
        let answer: RegisterAnswer = self.call("/v1/register", None, Some(&request))?;
        let number = RegistrationNumber::parse(&answer.registration_number)
            .map_err(|_| Error::Internal("the server sent a malformed number".into()))?
            .to_string();
        self.store_number(Some(number.clone()))?;
        self.keep_token(&form.product, &answer.token, request.nonce.unwrap_or(Nonce([0; 16])))?;
        Ok((number, answer.license))
    }

    /// Enters a registration number: its format is checked here (1002 without any network
    /// call), then the server is asked; an unknown number is 1002 and nothing is stored.
    ///
    /// ```no_run
    /// # let agent = licet_agent::Agent::new(licet_agent::AgentConfig::new("https://lic.example.com", "/tmp/c"))?;
    /// let err = agent.set_number("LICET-12345-12345-12345-12345").unwrap_err();
    /// assert_eq!(err.code(), licet_core::Code::InvalidRegistrationNumber); // a typo, caught offline
    /// # Ok::<(), licet_agent::Error>(())
    /// ```
    pub fn set_number(&self, number: &str) -> Result<Vec<LicenseObject>, Error> {
        let canonical = RegistrationNumber::parse(number)?.to_string();
        let licenses = self.licenses_of(&canonical).map_err(|e| match e.code() {
            Code::Unauthorized => Error::Server {
                code: Code::InvalidRegistrationNumber,
                message: Code::InvalidRegistrationNumber.message().into(),
            },
            _ => e,
        })?;
        self.store_number(Some(canonical))?;
        Ok(licenses)
    }

    /// Stores a number after the local format check only (1002 on a typo), for a host that never
    /// reaches a server (SPEC §8).
    pub fn set_number_offline(&self, number: &str) -> Result<(), Error> {
        let canonical = RegistrationNumber::parse(number)?.to_string();
        self.store_number(Some(canonical))
    }

    /// The air-gapped activation request of `product` for this host: one line of text that a
    /// connected machine takes to the server (the portal's "Offline activation" page, or
    /// `POST /v1/offline/activate`). No network; 3005 without a number.
    pub fn offline_request(&self, product: &str) -> Result<String, Error> {
        let number = self.require_number(Code::NotActivated)?;
        licet_core::model::validate_product_id(product)?;
        let request = OfflineRequest { number: number.into(), product: product.to_owned(), host: self.host().clone() };
        let text = request.encode();
        if text.len() > licet_core::offline::MAX_REQUEST_CHARS {
            let why = "longer than 2 KB: give this host a shorter name";
            return Err(Error::Local(licet_core::Error::input("request", why)));
        }
        Ok(text)
    }

    /// Verifies the token an air-gapped activation answered with (trusted keys, this host, the
    /// clock rules) and caches it: `check` then passes without a server until its lease ends.
    pub fn offline_install(&self, token: &str) -> Result<Grant, Error> {
        let mut st = self.state()?;
        // Line breaks or spaces a mail program added are not part of a token.
        let token: String = token.chars().filter(|c| !c.is_whitespace()).collect();
        let verdict = st.policy.install(self.now(), &token);
        self.persist(&mut st, false)?;
        verdict.map(|e| Grant::new(e, Source::Cache)).map_err(Error::from)
    }

    fn licenses_of(&self, number: &str) -> Result<Vec<LicenseObject>, Error> {
        let view: AccountObject = self.call::<Empty, _>("/v1/account", Some(number), None)?;
        Ok(view.licenses)
    }

    /// The account's licenses, from the server (3005 without a number).
    pub fn licenses(&self) -> Result<Vec<LicenseObject>, Error> {
        self.licenses_of(&self.require_number(Code::NotActivated)?)
    }

    /// Starts the account's trial of `product` on this host (1006 if it was used).
    pub fn trial(&self, product: &str) -> Result<LicenseObject, Error> {
        let request = self.host_request(self.require_number(Code::NotActivated)?, product);
        let answer: GrantAnswer = self.call("/v1/trial", None, Some(&request))?;
        self.keep_token(product, &answer.token, request.nonce.unwrap_or(Nonce([0; 16])))?;
        Ok(answer.license)
    }

    /// Redeems a coupon: a number must be entered first (1003) and the coupon well-formed
    /// (1004) — both checked before any network call.
    ///
    /// ```no_run
    /// # let agent = licet_agent::Agent::new(licet_agent::AgentConfig::new("https://lic.example.com", "/tmp/c"))?;
    /// let license = agent.redeem("LICETUPD-ABCDE-FGHJK-MNPQR-STVWX")?;
    /// println!("{} seats, {}", license.seats, license.kind.as_str());
    /// # Ok::<(), licet_agent::Error>(())
    /// ```
    pub fn redeem(&self, coupon: &str) -> Result<LicenseObject, Error> {
        let number = self.require_number(Code::RegistrationNumberRequired)?;
        let coupon = CouponCode::parse(coupon)?;
        let request = RedeemRequest { registration_number: Some(number), coupon: coupon.to_string() };
        let answer: LicenseAnswer = self.call("/v1/redeem", None, Some(&request))?;
        Ok(answer.license)
    }

    /// Frees this host's seat for `product` and deletes its token.
    pub fn deactivate(&self, product: &str) -> Result<(), Error> {
        let request = self.host_request(self.require_number(Code::NotActivated)?, product);
        let _: Empty = self.call("/v1/deactivate", None, Some(&request))?;
        let mut st = self.state()?;
        st.policy.forget(product);
        self.persist(&mut st, false)
    }

    /// Forgets the number and every token on this host; with `release`, first frees the seats
    /// this host holds — bindings and floating sessions (a seat the server no longer knows is
    /// not an error).
    pub fn forget(&self, release: bool) -> Result<(), Error> {
        if release && self.number()?.is_some() {
            for (product, _) in self.cached_products()? {
                let session = self.state()?.policy.session_of(&product);
                if let Some(session) = session {
                    self.release(&session)?;
                    continue;
                }
                match self.deactivate(&product) {
                    Ok(()) => {}
                    Err(e) if e.code() == Code::BindingNotFound => {}
                    Err(e) => return Err(e),
                }
            }
            // The sessions this agent holds whose tokens are not cached.
            let held: Vec<String> = self.opened().keys().cloned().collect();
            for session in held {
                self.release(&session)?;
            }
        }
        self.store_number(None)
    }
}
