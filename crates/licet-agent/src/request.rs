//! The agent's commands as values ([`Request`]) and what each answers ([`Answer`]): one place
//! that carries them out for the command line, the local service (SPEC §12) and the C ABI, so
//! that the three say the same things in the same JSON.

use licet_core::RegistrationNumber;
use serde_json::{Map, Value, json};

use crate::{Agent, Error, Grant, LicenseObject, RegistrationForm};

/// A command to the agent.
#[derive(Clone, Debug)]
pub enum Request {
    /// Register a new account from this host (starts a trial).
    Register(RegistrationForm),
    /// Enter the account's number (with `offline`, after the local format check only).
    SetNumber {
        /// The registration number.
        number: String,
        /// Store it without asking a server (air-gapped hosts).
        offline: bool,
    },
    /// This host's air-gapped activation request for a product.
    OfflineRequest {
        /// The product.
        product: String,
    },
    /// Install the token of an air-gapped activation.
    OfflineInstall {
        /// The token's text.
        token: String,
    },
    /// Start the account's trial of a product.
    Trial {
        /// The product.
        product: String,
    },
    /// Redeem a coupon.
    Redeem {
        /// The coupon.
        coupon: String,
    },
    /// Check a product's license on this host, with features it must grant.
    Check {
        /// The product.
        product: String,
        /// Features the license must grant (2009 otherwise).
        features: Vec<String>,
    },
    /// The number (masked) and the offline verdict on each cached token.
    Status,
    /// The account's licenses, from the server.
    Licenses,
    /// The cached token of a product.
    Token {
        /// The product.
        product: String,
    },
    /// The offline verdict on a token.
    Verify {
        /// The token's text.
        token: String,
        /// The product.
        product: String,
        /// Features the token must grant.
        features: Vec<String>,
    },
    /// Free this host's seat of a product.
    Deactivate {
        /// The product.
        product: String,
    },
    /// Forget the number (with `release`, free this host's seats first).
    Forget {
        /// Free the seats first.
        release: bool,
    },
    /// This host's fingerprint components.
    Fingerprint,
    /// Check out a floating session.
    Checkout {
        /// The product.
        product: String,
        /// Hours to borrow the seat for, offline.
        borrow_hours: Option<u32>,
        /// The user shown in the session monitor (`None`: the agent's).
        user: Option<String>,
    },
    /// Extend a floating session.
    Heartbeat {
        /// The session's id.
        session: String,
    },
    /// End a floating session.
    Release {
        /// The session's id.
        session: String,
    },
}

/// What a command says on success: the fields of its JSON object and readable lines.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    pub(crate) fields: Map<String, Value>,
    pub(crate) text: Vec<String>,
}

impl Answer {
    pub(crate) fn new() -> Answer {
        Answer::default()
    }

    pub(crate) fn field(mut self, name: &str, value: Value) -> Answer {
        self.fields.insert(name.to_owned(), value);
        self
    }

    pub(crate) fn line(mut self, line: impl Into<String>) -> Answer {
        self.text.push(line.into());
        self
    }

    /// The JSON object of SPEC §6: `{"ok":true,…}` and the command's fields.
    pub fn json(&self) -> Value {
        let mut fields = Map::new();
        fields.insert("ok".into(), json!(true));
        fields.extend(self.fields.clone());
        Value::Object(fields)
    }

    /// One field of the answer (e.g. `session_id` of a checkout).
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// The readable lines.
    pub fn lines(&self) -> &[String] {
        &self.text
    }
}

/// The JSON object of a refusal: `{"ok":false,"code":N,"name":"…","message":"…"}`.
pub fn refusal_json(e: &Error) -> Value {
    json!({"ok": false, "code": e.code().number(), "name": e.code().name(), "message": e.to_string()})
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn strs(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

pub(crate) fn describe_license(l: &LicenseObject) -> String {
    let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let mut text = format!(
        "{} {} ({} of {} seats used), {}",
        l.product,
        l.kind.as_str(),
        l.seats_used,
        l.seats,
        l.expires_at.map_or("perpetual".to_owned(), |t| format!("until {}", at(t)))
    );
    if let Some(grace) = l.grace_until.filter(|g| Some(*g) != l.expires_at) {
        text.push_str(&format!(", grace until {}", at(grace)));
    }
    if !l.features.is_empty() {
        text.push_str(&format!(", features: {}", l.features.join(", ")));
    }
    if l.model != licet_core::LicenseModel::Host {
        text.push_str(&format!(", {} ({} sessions live)", l.model.as_str(), l.sessions_live.unwrap_or(l.seats_used)));
    }
    if let Some(n) = l.resets_left {
        text.push_str(&format!(", {n} resets left"));
    }
    text
}

fn licenses_answer(licenses: &[LicenseObject], first: Option<&str>) -> Answer {
    let mut answer = Answer::new().field("licenses", to_json(&licenses));
    if let Some(line) = first {
        answer = answer.line(line);
    }
    for l in licenses {
        answer = answer.line(describe_license(l));
    }
    answer
}

pub(crate) fn grant_answer(g: &Grant) -> Answer {
    let end = g.expires_at.map_or("perpetual".to_owned(), |t| format!("term until {}", t.format("%Y-%m-%d %H:%M UTC")));
    let mut answer = Answer::new().line(format!(
        "{}: licensed ({}, {}{}), offline until {}, from the {}",
        g.product,
        g.kind.as_str(),
        end,
        if g.in_grace { ", in its grace period" } else { "" },
        g.lease_until.format("%Y-%m-%d %H:%M UTC"),
        if g.source == crate::Source::Server { "server" } else { "cache" }
    ));
    if !g.features.is_empty() {
        answer = answer.line(format!("features: {}", g.features.join(", ")));
    }
    if let Some(session) = &g.session_id {
        answer = answer
            .line(format!("floating session {session}, held until {}", g.lease_until.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    if let Value::Object(map) = to_json(g) {
        answer.fields.extend(map);
    }
    answer
}

impl Agent {
    /// Carries out `request` and says what it did, as the command line prints it.
    ///
    /// ```no_run
    /// # let agent = licet_agent::Agent::new(licet_agent::AgentConfig::new("https://lic.example.com", "/tmp/c"))?;
    /// use licet_agent::Request;
    /// let answer = agent.perform(Request::Check { product: "call-journal".into(), features: vec![] })?;
    /// println!("{}", answer.json()); // {"ok":true,"product":"call-journal",…}
    /// # Ok::<(), licet_agent::Error>(())
    /// ```
    pub fn perform(&self, request: Request) -> Result<Answer, Error> {
        Ok(match request {
            Request::Register(form) => {
                let (number, license) = self.register(&form)?;
                Answer::new()
                    .field("registration_number", json!(number))
                    .field("license", to_json(&license))
                    .line(format!("registered; your registration number is {number} (it was also e-mailed to you)"))
                    .line(describe_license(&license))
            }
            Request::SetNumber { number, offline: true } => {
                self.set_number_offline(&number)?;
                Answer::new()
                    .field("offline", json!(true))
                    .line("number stored (checked for typos only, not with the server)")
            }
            Request::SetNumber { number, offline: false } => {
                licenses_answer(&self.set_number(&number)?, Some("number stored"))
            }
            Request::OfflineRequest { product } => {
                let request = self.offline_request(&product)?;
                Answer::new().field("request", json!(request)).line(request)
            }
            Request::OfflineInstall { token } => grant_answer(&self.offline_install(&token)?),
            Request::Trial { product } => {
                let license = self.trial(&product)?;
                Answer::new().field("license", to_json(&license)).line(describe_license(&license))
            }
            Request::Redeem { coupon } => {
                let license = self.redeem(&coupon)?;
                Answer::new().field("license", to_json(&license)).line(describe_license(&license))
            }
            Request::Check { product, features } => grant_answer(&self.check_features(&product, &strs(&features))?),
            Request::Verify { token, product, features } => {
                grant_answer(&self.verify_features(&token, &product, &strs(&features))?)
            }
            Request::Status => self.status_answer()?,
            Request::Licenses => licenses_answer(&self.licenses()?, None),
            Request::Token { product } => {
                let token = self.token(&product)?;
                Answer::new().field("token", json!(token)).line(token)
            }
            Request::Deactivate { product } => {
                self.deactivate(&product)?;
                Answer::new().line(format!("{product}: this host's seat is free"))
            }
            Request::Forget { release } => {
                self.forget(release)?;
                Answer::new().line("the registration number and cached licenses were removed from this host")
            }
            Request::Checkout { product, borrow_hours, user } => {
                grant_answer(&self.open_session_as(&product, borrow_hours, user.as_deref())?)
            }
            Request::Heartbeat { session } => grant_answer(&self.heartbeat(&session)?),
            Request::Release { session } => {
                self.release(&session)?;
                Answer::new().line(format!("session {session} released; its seat is free"))
            }
            Request::Fingerprint => {
                let components = self.fingerprint().components();
                let mut answer = Answer::new().field("components", to_json(components));
                for (k, v) in components {
                    answer = answer.line(format!("{k}: {v}"));
                }
                answer
            }
        })
    }

    fn status_answer(&self) -> Result<Answer, Error> {
        let number = self.number()?;
        let masked = number.as_deref().and_then(|n| RegistrationNumber::parse(n).ok()).map(|n| n.masked());
        let mut answer = Answer::new()
            .field("registration_number", json!(masked))
            .line(format!("registration number: {}", masked.as_deref().unwrap_or("none")));
        let mut products = Vec::new();
        for (product, verdict) in self.cached_products()? {
            match verdict {
                Ok(g) => {
                    let g = grant_answer(&g);
                    answer.text.extend(g.text);
                    products.push(Value::Object(g.fields));
                }
                Err(e) => {
                    answer.text.push(format!("{product}: {} ({} {})", e, e.code().number(), e.code().name()));
                    let mut refusal = refusal_json(&e);
                    if let Value::Object(map) = &mut refusal {
                        map.remove("ok");
                        map.insert("product".into(), json!(product));
                    }
                    products.push(refusal);
                }
            }
        }
        Ok(answer.field("products", Value::Array(products)))
    }
}
