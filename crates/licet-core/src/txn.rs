//! How the ledger reads and writes records without doing I/O itself.
//!
//! A command runs inside a [`Tx`]: it reads through a [`Snapshot`] that a store provides and
//! collects its writes as [`Changes`]. The store applies the changes atomically only if the
//! command succeeds; a refused command writes nothing. Keys name one record each, so a command
//! touches only the records it needs (one account, its indexes, a coupon) and a store never has
//! to load the whole ledger.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::mail::Mail;
use crate::model::{Account, Coupon, Product};
use crate::record::Record;

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
    /// A queued [`Mail`] by its queue id ([`Mail::new_id`]).
    Mail(String),
}

/// A kind of record: the keys a store lists together ([`Table::prefix`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Table {
    /// [`RecordKey::Product`].
    Product,
    /// [`RecordKey::Account`].
    Account,
    /// [`RecordKey::Coupon`].
    Coupon,
    /// [`RecordKey::Mail`].
    Mail,
}

impl Table {
    /// What the byte form of every key of this table starts with.
    pub fn prefix(self) -> [u8; 2] {
        [self.tag(), b'/']
    }

    fn tag(self) -> u8 {
        match self {
            Table::Product => b'p',
            Table::Account => b'a',
            Table::Coupon => b'c',
            Table::Mail => b'm',
        }
    }

    /// The name [`RecordKey::table`] gives this table's keys.
    pub fn name(self) -> &'static str {
        match self {
            Table::Product => "product",
            Table::Account => "account",
            Table::Coupon => "coupon",
            Table::Mail => "mail",
        }
    }
}

impl std::fmt::Debug for RecordKey {
    /// Registration numbers and coupons are credentials: only their last five symbols show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tail = |s: &str| format!("…{}", &s[s.len().saturating_sub(5)..]);
        match self {
            RecordKey::Number(body) => write!(f, "Number({})", tail(body)),
            RecordKey::Coupon(body) => write!(f, "Coupon({})", tail(body)),
            RecordKey::HostComponent(h) => write!(f, "HostComponent({})", hex::encode(&h[..4])),
            RecordKey::Product(s) => write!(f, "Product({s})"),
            RecordKey::Account(s) => write!(f, "Account({s})"),
            RecordKey::Email(s) => write!(f, "Email({s})"),
            RecordKey::Mail(s) => write!(f, "Mail({s})"),
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
            RecordKey::Mail(s) => (b'm', s.as_bytes()),
        };
        let mut out = Vec::with_capacity(2 + id.len());
        out.push(tag);
        out.push(b'/');
        out.extend_from_slice(id);
        out
    }

    /// The key of a byte form made by [`RecordKey::to_bytes`]; `None` for anything else.
    pub fn from_bytes(bytes: &[u8]) -> Option<RecordKey> {
        let (tag, id) = match bytes {
            [tag, b'/', id @ ..] => (*tag, id),
            _ => return None,
        };
        let text = || String::from_utf8(id.to_vec()).ok();
        Some(match tag {
            b'p' => RecordKey::Product(text()?),
            b'a' => RecordKey::Account(text()?),
            b'e' => RecordKey::Email(text()?),
            b'n' => RecordKey::Number(text()?),
            b'c' => RecordKey::Coupon(text()?),
            b'h' => RecordKey::HostComponent(id.try_into().ok()?),
            b'm' => RecordKey::Mail(text()?),
            _ => return None,
        })
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
            RecordKey::Mail(_) => "mail",
        }
    }
}

/// Read access to the committed records, consistent for the duration of one transaction.
pub trait Snapshot {
    /// The record under `key`, if any.
    fn get(&self, key: &RecordKey) -> Result<Option<Record>, Error>;
}

/// The writes of one command: a record to store, or `None` to delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    writes: BTreeMap<RecordKey, Option<Record>>,
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
    pub fn iter(&self) -> impl Iterator<Item = (&RecordKey, Option<&Record>)> {
        self.writes.iter().map(|(k, v)| (k, v.as_ref()))
    }
}

/// One command's view: committed records plus its own uncommitted writes.
pub struct Tx<'s> {
    snapshot: &'s dyn Snapshot,
    changes: Changes,
}

/// Takes the record of the expected kind out of a [`Record`].
macro_rules! record_as {
    ($record:expr, $key:expr, $variant:ident) => {
        match $record {
            None => Ok(None),
            Some(Record::$variant(v)) => Ok(Some(v)),
            Some(other) => Err(Error::Internal(format!("record {:?} holds {other:?}", $key))),
        }
    };
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

    /// The record under `key`, whatever its kind: for listings and tools that page through a
    /// table; commands use the typed readers.
    pub fn record(&self, key: &RecordKey) -> Result<Option<Record>, Error> {
        self.read(key)
    }

    fn read(&self, key: &RecordKey) -> Result<Option<Record>, Error> {
        match self.changes.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.snapshot.get(key),
        }
    }

    fn write(&mut self, key: RecordKey, record: Record) {
        debug_assert!(record.fits(&key), "{key:?} cannot hold {record:?}");
        self.changes.writes.insert(key, Some(record));
    }

    /// Removes the record under `key`.
    pub fn delete(&mut self, key: RecordKey) {
        self.changes.writes.insert(key, None);
    }

    /// Whether a record exists under `key`.
    pub fn exists(&self, key: &RecordKey) -> Result<bool, Error> {
        Ok(self.read(key)?.is_some())
    }

    /// A product.
    pub fn product(&self, id: &str) -> Result<Option<Product>, Error> {
        let key = RecordKey::Product(id.to_owned());
        record_as!(self.read(&key)?, key, Product)
    }

    /// Stores a product.
    pub fn put_product(&mut self, product: &Product) {
        self.write(RecordKey::Product(product.id.clone()), Record::Product(product.clone()));
    }

    /// An account.
    pub fn account(&self, id: &str) -> Result<Option<Account>, Error> {
        let key = RecordKey::Account(id.to_owned());
        record_as!(self.read(&key)?, key, Account)
    }

    /// Stores an account.
    pub fn put_account(&mut self, account: &Account) {
        self.write(RecordKey::Account(account.id.clone()), Record::Account(account.clone()));
    }

    /// An account id from an index key ([`RecordKey::Email`] or [`RecordKey::Number`]).
    pub fn account_id(&self, index: &RecordKey) -> Result<Option<String>, Error> {
        record_as!(self.read(index)?, index, AccountId)
    }

    /// Points an index key at an account.
    pub fn put_account_id(&mut self, index: RecordKey, account_id: &str) {
        self.write(index, Record::AccountId(account_id.to_owned()));
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
        let key = RecordKey::Coupon(body.to_owned());
        record_as!(self.read(&key)?, key, Coupon)
    }

    /// Stores a coupon.
    pub fn put_coupon(&mut self, coupon: &Coupon) {
        self.write(RecordKey::Coupon(coupon.body.clone()), Record::Coupon(coupon.clone()));
    }

    /// A queued mail.
    pub fn mail(&self, id: &str) -> Result<Option<Mail>, Error> {
        let key = RecordKey::Mail(id.to_owned());
        record_as!(self.read(&key)?, key, Mail)
    }

    /// Stores a queued mail under `id` (a new one: [`Mail::new_id`]).
    pub fn put_mail(&mut self, id: &str, mail: &Mail) {
        self.write(RecordKey::Mail(id.to_owned()), Record::Mail(mail.clone()));
    }

    /// Accounts whose registration host has this component.
    pub fn host_accounts(&self, component: [u8; 16]) -> Result<Vec<String>, Error> {
        let key = RecordKey::HostComponent(component);
        Ok(record_as!(self.read(&key)?, key, HostAccounts)?.unwrap_or_default())
    }

    /// Stores the accounts whose registration host has this component (none: the entry goes).
    pub fn put_host_accounts(&mut self, component: [u8; 16], accounts: &[String]) {
        let key = RecordKey::HostComponent(component);
        if accounts.is_empty() {
            self.delete(key);
        } else {
            self.write(key, Record::HostAccounts(accounts.to_vec()));
        }
    }
}

/// An in-memory ledger: the reference store for tests and simulations.
#[derive(Clone, Debug, Default)]
pub struct MemState {
    records: BTreeMap<RecordKey, Record>,
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
                Some(v) => self.records.insert(key.clone(), v.clone()),
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

    /// Every record, for tests that check invariants over the whole ledger.
    pub fn records(&self) -> impl Iterator<Item = (&RecordKey, &Record)> {
        self.records.iter()
    }
}

impl Snapshot for MemState {
    fn get(&self, key: &RecordKey) -> Result<Option<Record>, Error> {
        Ok(self.records.get(key).cloned())
    }
}
