//! Moving a ledger's e-mail index to this release's identity of an address (NFC, lower case,
//! the domain as UTS #46 ASCII: `licet_core::email`), once, when a ledger written before it is
//! opened.

use std::path::Path;

use licet_core::email::{StoredEmail, plan_reindex};
use licet_core::{Record, RecordKey};

use crate::error::Error;
use crate::sled_store::sled_error;

/// Set once the index follows [`licet_core::email::identity`].
const EMAIL_IDENTITY: &[u8] = b"!email-identity-1";
/// What the re-index found, kept in the ledger until the vendor has been handed it.
pub(crate) const EMAIL_REPORT: &[u8] = b"!email-report";

/// Re-indexes the accounts of `ledger` unless done before. The moves, the report (when there is
/// anything to report) and the mark are one atomic batch, flushed: killed midway, it runs again.
pub(crate) fn bring_up_to_date(db: &sled::Db, ledger: &sled::Tree, path: &Path) -> Result<(), Error> {
    if ledger.get(EMAIL_IDENTITY).map_err(|e| sled_error(path, e))?.is_some() {
        return Ok(());
    }
    let corrupt = |message: String| Error::Corrupt { path: path.to_owned(), message };
    let mut accounts = Vec::new();
    for item in ledger.scan_prefix(b"a/") {
        let (key, value) = item.map_err(|e| sled_error(path, e))?;
        let key = RecordKey::from_bytes(&key).ok_or_else(|| corrupt("an account key is unreadable".into()))?;
        match Record::decode(&key, &value).map_err(|e| corrupt(e.to_string()))? {
            Record::Account(account) => accounts.push(StoredEmail { account_id: account.id, email: account.email }),
            _ => return Err(corrupt(format!("{key:?} holds no account"))),
        }
    }
    let indexed = |key: &str| -> Option<String> {
        let index = RecordKey::Email(key.to_owned());
        match ledger.get(index.to_bytes()).ok().flatten().map(|v| Record::decode(&index, &v)) {
            Some(Ok(Record::AccountId(id))) => Some(id),
            _ => None,
        }
    };
    let (moves, report) = plan_reindex(&accounts, indexed);
    let mut batch = sled::Batch::default();
    for m in moves {
        if let Some(from) = m.from {
            batch.remove(RecordKey::Email(from).to_bytes());
        }
        let to = RecordKey::Email(m.to);
        batch.insert(to.to_bytes(), Record::AccountId(m.account_id).encode());
    }
    if report.reindexed > 0 || report.needs_attention() {
        batch.insert(EMAIL_REPORT, report.encode());
    }
    batch.insert(EMAIL_IDENTITY, b"1".as_slice());
    ledger.apply_batch(batch).map_err(|e| sled_error(path, e))?;
    db.flush().map_err(|e| sled_error(path, e))?;
    Ok(())
}
