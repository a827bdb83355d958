//! How the ledger reads and writes records without doing I/O itself.
//!
//! A command runs inside a [`Tx`]: it reads through a [`Snapshot`] that a store provides and
//! collects its writes as [`Changes`]. The store applies the changes atomically only if the
//! command succeeds; a refused command writes nothing. Keys name one record each, so a command
//! touches only the records it needs (one account, its indexes, a coupon) and a store never has
//! to load the whole ledger.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::error::Error;
use crate::model::{Account, Coupon, Product};

/// The name of one stored record.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RecordKey {
    /// A [`Product`] by slug.
    Product(String),
    /// An [`Account`] by id.
    Account(String),
    /// Account id by lower-cased e-mail.
    Email(String),
    /// Account id by registration number body.
    Number(String),
    /// A [`Coupon`] by body.
    Coupon(String),
    /// Ids of accounts whose registration host has this component (16 bytes of its hash).
    HostComponent([u8; 16]),
}

impl std::fmt::Debug for RecordKey {
    /// Registration numbers and coupons are credentials: only their last five symbols show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail = |s: &str| format!("…{}", &s[s.len().saturating_sub(5)..]);
        match self {
            RecordKey::Number(body) => write!(f, "Number({})", tail(body)),
            RecordKey::Coupon(body) => write!(f, "Coupon({})", tail(body)),
            RecordKey::HostComponent(h) => write!(f, "HostComponent({})", crate::host::hex(&h[..4])),
            RecordKey::Product(s) => write!(f, "Product({s})"),
            RecordKey::Account(s) => write!(f, "Account({s})"),
            RecordKey::Email(s) => write!(f, "Email({s})"),
        }
    }
}

impl RecordKey {
    /// A stable byte form for ordered key-value stores: a one-letter table tag, then the id.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (tag, id): (u8, &[u8]) = match self {
            RecordKey::Product(s) => (b'p', s.as_bytes()),
            RecordKey::Account(s) => (b'a', s.as_bytes()),
            RecordKey::Email(s) => (b'e', s.as_bytes()),
            RecordKey::Number(s) => (b'n', s.as_bytes()),
            RecordKey::Coupon(s) => (b'c', s.as_bytes()),
            RecordKey::HostComponent(h) => (b'h', h.as_slice()),
        };
        let mut out = Vec::with_capacity(2 + id.len());
        out.push(tag);
        out.push(b'/');
        out.extend_from_slice(id);
        out
    }

    /// The table this key belongs to (`product`, `account`, …), e.g. for a SQL backend.
    pub fn table(&self) -> &'static str {
        match self {
            RecordKey::Product(_) => "product",
            RecordKey::Account(_) => "account",
            RecordKey::Email(_) => "email",
            RecordKey::Number(_) => "number",
            RecordKey::Coupon(_) => "coupon",
            RecordKey::HostComponent(_) => "host_component",
        }
    }
}

/// Read access to the committed records, consistent for the duration of one transaction.
pub trait Snapshot {
    /// The encoded record under `key`, if any.
    fn get(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, Error>;
}

/// The writes of one command: a value to store, or `None` to delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    writes: BTreeMap<RecordKey, Option<Vec<u8>>>,
}

impl Changes {
    /// Whether the command wrote nothing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Number of records written or deleted.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Every write, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&RecordKey, Option<&[u8]>)> {
        self.writes.iter().map(|(k, v)| (k, v.as_deref()))
    }
}

/// One command's view: committed records plus its own uncommitted writes.
pub struct Tx<'s> {
    snapshot: &'s dyn Snapshot,
    changes: Changes,
}

impl<'s> Tx<'s> {
    /// A transaction reading from `snapshot`.
    pub fn new(snapshot: &'s dyn Snapshot) -> Tx<'s> {
        Tx { snapshot, changes: Changes::default() }
    }

    /// The writes collected so far.
    pub fn into_changes(self) -> Changes {
        self.changes
    }

    fn raw(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, Error> {
        match self.changes.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.snapshot.get(key),
        }
    }

    fn read<T: DeserializeOwned>(&self, key: &RecordKey) -> Result<Option<T>, Error> {
        match self.raw(key)? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes)
                .map(Some)
                .map_err(|e| Error::Internal(format!("record {key:?} is unreadable: {e}"))),
        }
    }

    fn write<T: Serialize>(&mut self, key: RecordKey, value: &T) {
        self.changes.writes.insert(key, Some(codec::encode(value)));
    }

    /// Removes the record under `key`.
    pub fn delete(&mut self, key: RecordKey) {
        self.changes.writes.insert(key, None);
    }

    /// Whether a record exists under `key`.
    pub fn exists(&self, key: &RecordKey) -> Result<bool, Error> {
        Ok(self.raw(key)?.is_some())
    }

    /// A product.
    pub fn product(&self, id: &str) -> Result<Option<Product>, Error> {
        self.read(&RecordKey::Product(id.to_owned()))
    }

    /// Stores a product.
    pub fn put_product(&mut self, product: &Product) {
        self.write(RecordKey::Product(product.id.clone()), product);
    }

    /// An account.
    pub fn account(&self, id: &str) -> Result<Option<Account>, Error> {
        self.read(&RecordKey::Account(id.to_owned()))
    }

    /// Stores an account.
    pub fn put_account(&mut self, account: &Account) {
        self.write(RecordKey::Account(account.id.clone()), account);
    }

    /// An account id from an index key ([`RecordKey::Email`] or [`RecordKey::Number`]).
    pub fn account_id(&self, index: &RecordKey) -> Result<Option<String>, Error> {
        self.read(index)
    }

    /// Points an index key at an account.
    pub fn put_account_id(&mut self, index: RecordKey, account_id: &str) {
        self.write(index, &account_id);
    }

    /// The account an index key points at.
    pub fn account_by(&self, index: &RecordKey) -> Result<Option<Account>, Error> {
        match self.account_id(index)? {
            None => Ok(None),
            Some(id) => match self.account(&id)? {
                Some(account) => Ok(Some(account)),
                None => Err(Error::Internal(format!("index {index:?} points at missing account {id}"))),
            },
        }
    }

    /// A coupon.
    pub fn coupon(&self, body: &str) -> Result<Option<Coupon>, Error> {
        self.read(&RecordKey::Coupon(body.to_owned()))
    }

    /// Stores a coupon.
    pub fn put_coupon(&mut self, coupon: &Coupon) {
        self.write(RecordKey::Coupon(coupon.body.clone()), coupon);
    }

    /// Accounts whose registration host has this component.
    pub fn host_accounts(&self, component: [u8; 16]) -> Result<Vec<String>, Error> {
        Ok(self.read(&RecordKey::HostComponent(component))?.unwrap_or_default())
    }

    /// Stores the accounts whose registration host has this component.
    pub fn put_host_accounts(&mut self, component: [u8; 16], accounts: &Vec<String>) {
        self.write(RecordKey::HostComponent(component), accounts);
    }
}

/// An in-memory ledger: the reference store for tests and simulations.
#[derive(Clone, Debug, Default)]
pub struct MemState {
    records: BTreeMap<RecordKey, Vec<u8>>,
}

impl MemState {
    /// An empty ledger.
    pub fn new() -> MemState {
        MemState::default()
    }

    /// Runs `command` in a transaction and applies its changes if it succeeds.
    pub fn transact<T>(&mut self, command: impl FnOnce(&mut Tx<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let mut tx = Tx::new(&*self);
        let out = command(&mut tx)?;
        let changes = tx.into_changes();
        self.apply(&changes);
        Ok(out)
    }

    /// Runs one ledger command through [`Ledger::handle`](crate::Ledger::handle) and takes its
    /// outcome as the type the caller expects.
    pub fn execute<T: TryFrom<crate::Outcome, Error = Error>>(
        &mut self,
        ledger: &crate::Ledger,
        now: crate::Time,
        entropy: &mut dyn crate::Entropy,
        command: &crate::Command,
    ) -> Result<T, Error> {
        self.transact(|tx| ledger.handle(tx, now, entropy, command))?.try_into()
    }

    /// Applies committed changes.
    pub fn apply(&mut self, changes: &Changes) {
        for (key, value) in changes.iter() {
            match value {
                Some(v) => self.records.insert(key.clone(), v.to_vec()),
                None => self.records.remove(key),
            };
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Every record of a table, for tests that check invariants over the whole ledger.
    pub fn records(&self) -> impl Iterator<Item = (&RecordKey, &[u8])> {
        self.records.iter().map(|(k, v)| (k, v.as_slice()))
    }
}

impl Snapshot for MemState {
    fn get(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.records.get(key).cloned())
    }
}
