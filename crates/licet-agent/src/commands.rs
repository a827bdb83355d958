//! The agent's commands that talk to the server: register, enter a number, trial, coupons,
//! deactivation, forgetting, listing licenses.

use licet_core::{Code, CouponCode, RegistrationNumber, TokenFormat};
use serde_json::{Value, json};

use crate::agent::{Agent, License};
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
}

fn license(value: &Value) -> Result<License, Error> {
    serde_json::from_value(value.clone())
        .map_err(|e| Error::Internal(format!("the server sent an unreadable license: {e}")))
}

impl Agent {
    /// Caches the token of a command the server has already carried out. Its offline verdict
    /// does not undo the command (a bad local clock gives 3004 at the next check, not now), so
    /// only a failure to store it is an error.
    fn keep_token(&self, product: &str, answer: &Value) -> Result<(), Error> {
        match self.accept_token(product, answer["token"].as_str().unwrap_or_default()) {
            Ok(_) | Err(Error::Local(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn require_number(&self, missing: Code) -> Result<String, Error> {
        self.number()?.ok_or(Error::local(missing))
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
    pub fn register(&self, form: &RegistrationForm) -> Result<(String, License), Error> {
        let body = json!({"email": form.email, "organization": form.organization, "contact": form.contact,
                          "phone": form.phone, "product": form.product, "host": self.host_json(),
                          "token_format": TokenFormat::LATEST_MARKER});
        let answer = self.client().call("/v1/register", None, Some(&body))?;
        let number = answer["registration_number"].as_str().unwrap_or_default().to_owned();
        RegistrationNumber::parse(&number).map_err(|_| Error::Internal("the server sent a malformed number".into()))?;
        self.store_number(Some(&number))?;
        self.keep_token(&form.product, &answer)?;
        Ok((number, license(&answer["license"])?))
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
    pub fn set_number(&self, number: &str) -> Result<Vec<License>, Error> {
        let parsed = RegistrationNumber::parse(number)?;
        let canonical = parsed.to_string();
        let licenses = self.licenses_of(&canonical).map_err(|e| match e.code() {
            Code::Unauthorized => Error::Server {
                code: Code::InvalidRegistrationNumber,
                message: Code::InvalidRegistrationNumber.message().into(),
            },
            _ => e,
        })?;
        self.store_number(Some(&canonical))?;
        Ok(licenses)
    }

    fn licenses_of(&self, number: &str) -> Result<Vec<License>, Error> {
        let view = self.client().call("/v1/account", Some(number), None)?;
        view["licenses"].as_array().map(|ls| ls.iter().map(license).collect()).unwrap_or_else(|| Ok(Vec::new()))
    }

    /// The account's licenses, from the server (3005 without a number).
    pub fn licenses(&self) -> Result<Vec<License>, Error> {
        self.licenses_of(&self.require_number(Code::NotActivated)?)
    }

    /// Starts the account's trial of `product` on this host (1006 if it was used).
    pub fn trial(&self, product: &str) -> Result<License, Error> {
        let number = self.require_number(Code::NotActivated)?;
        let body = json!({"registration_number": number, "product": product, "host": self.host_json(),
                           "token_format": TokenFormat::LATEST_MARKER});
        let answer = self.client().call("/v1/trial", None, Some(&body))?;
        self.keep_token(product, &answer)?;
        license(&answer["license"])
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
    pub fn redeem(&self, coupon: &str) -> Result<License, Error> {
        let number = self.require_number(Code::RegistrationNumberRequired)?;
        let coupon = CouponCode::parse(coupon)?;
        let body = json!({"registration_number": number, "coupon": coupon.to_string()});
        let answer = self.client().call("/v1/redeem", None, Some(&body))?;
        license(&answer["license"])
    }

    /// Frees this host's seat for `product` and deletes its token.
    pub fn deactivate(&self, product: &str) -> Result<(), Error> {
        let number = self.require_number(Code::NotActivated)?;
        let body = json!({"registration_number": number, "product": product, "host": self.host_json(),
                           "token_format": TokenFormat::LATEST_MARKER});
        self.client().call("/v1/deactivate", None, Some(&body))?;
        self.forget_token(product)
    }

    /// Forgets the number and every token on this host; with `release`, first frees the seats
    /// this host holds (a seat the server no longer knows is not an error).
    pub fn forget(&self, release: bool) -> Result<(), Error> {
        if release && self.number()?.is_some() {
            for (product, _) in self.cached_products()? {
                match self.deactivate(&product) {
                    Ok(()) => {}
                    Err(e) if e.code() == Code::BindingNotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.store_number(None)
    }
}
