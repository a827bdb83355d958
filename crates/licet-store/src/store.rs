//! The storage trait the server drives the ledger through.

use licet_core::{Command, Entropy, Error, Ledger, Outcome, Record, RecordKey, Table, Time, Tx};

/// A durable home for the ledger's records.
///
/// The contract, which every implementation must keep and the shared test suite checks:
/// * **Atomic**: a command's writes are applied all together, and only if it returns `Ok`.
/// * **Serializable**: two commands never interleave into a state that running them one after
///   the other could not produce (seats are never oversubscribed, a coupon never redeemed twice).
/// * **Durable before acknowledged**: `transact` returns only after the change — and every change
///   the command read — would survive a crash of the process or the machine.
///
/// The signatures hold no backend types, so a networked SQL store (one transaction per command,
/// retried on serialization failure) fits behind it; that is why the command may be run more
/// than once and must be a pure function of what it reads.
pub trait Store: Send + Sync {
    /// Runs `command` in a transaction; see the trait's contract.
    fn transact_dyn(&self, command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), Error>) -> Result<(), Error>;

    /// Makes everything committed so far durable (e.g. before a clean shutdown).
    fn flush(&self) -> Result<(), Error>;

    /// Up to `limit` keys of `table`'s records, in key order, starting after `after` (from the
    /// first when `None`): a page of a listing. What a listed key holds is read in a
    /// transaction; a key listed may be gone by then.
    fn keys(&self, table: Table, after: Option<&RecordKey>, limit: usize) -> Result<Vec<RecordKey>, Error>;

    /// Whether the store can take a durable change now (for `/v1/health`): `Unavailable` when it
    /// lost its disk or database. May block briefly.
    fn health(&self) -> Result<(), Error> {
        Ok(())
    }
}

/// The byte form just past every key of `table` (its prefix with the separator moved up one).
pub(crate) fn table_end(table: Table) -> Vec<u8> {
    let [tag, separator] = table.prefix();
    vec![tag, separator + 1]
}

/// Where a page of `table`'s keys starts in byte form: just after `after`, or at the table's first.
pub(crate) fn page_start(table: Table, after: Option<&RecordKey>) -> Vec<u8> {
    match after {
        Some(key) => {
            let mut start = key.to_bytes();
            start.push(0);
            start
        }
        None => table.prefix().to_vec(),
    }
}

/// Typed transactions on any [`Store`].
pub trait StoreExt: Store {
    /// Runs `command` in a transaction and returns its result; see [`Store`].
    fn transact<T>(&self, mut command: impl FnMut(&mut Tx<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let mut out = None;
        self.transact_dyn(&mut |tx| {
            out = Some(command(tx)?);
            Ok(())
        })?;
        out.ok_or_else(|| Error::Internal("a store committed without running the command".into()))
    }

    /// Runs one ledger command through [`Ledger::handle`] in a transaction and takes its outcome
    /// as the type the caller expects (`let seat: Seat = store.execute(…)?`).
    fn execute<T: TryFrom<Outcome, Error = Error>>(
        &self,
        ledger: &Ledger,
        now: Time,
        entropy: &mut dyn Entropy,
        command: &Command,
    ) -> Result<T, Error> {
        self.transact(|tx| ledger.handle(tx, now, &mut *entropy, command))?.try_into()
    }

    /// The records under `keys`, read in one transaction (a key gone meanwhile is skipped).
    fn records(&self, keys: &[RecordKey]) -> Result<Vec<Record>, Error> {
        self.transact(|tx| {
            let mut records = Vec::with_capacity(keys.len());
            for key in keys {
                records.extend(tx.record(key)?);
            }
            Ok(records)
        })
    }

    /// Calls `each` with every record of `table`, listing `page` keys at a time and reading each
    /// page in one transaction: consistent page by page, not as one snapshot of the table.
    fn for_each_record(&self, table: Table, page: usize, mut each: impl FnMut(Record)) -> Result<(), Error> {
        let mut after: Option<RecordKey> = None;
        loop {
            let keys = self.keys(table, after.as_ref(), page)?;
            let Some(last) = keys.last().cloned() else { return Ok(()) };
            self.records(&keys)?.into_iter().for_each(&mut each);
            after = Some(last);
        }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}
