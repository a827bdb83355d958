//! The outbox: one RFC 5322 `.eml` file per message in `D/outbox/`, written durably (temporary
//! file, fsync, rename, fsync of the directory) for the operator's mail relay to pick up.

use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use chrono::{DateTime, Utc};
use licet_core::{Entropy, Mail};
use licet_store::{OsEntropy, PgStore};

/// The outbox directory.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    dir: PathBuf,
    from: String,
}

/// Header values may not carry line breaks (header injection).
fn header_safe(value: &str) -> String {
    value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// RFC 2047 encoded-word for a non-ASCII header value.
fn encode_header(value: &str) -> String {
    let value = header_safe(value);
    if value.is_ascii() {
        return value;
    }
    let mut out = String::from("=?UTF-8?Q?");
    for b in value.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => out.push(b as char),
            b' ' => out.push('_'),
            _ => out.push_str(&format!("={b:02X}")),
        }
    }
    out.push_str("?=");
    out
}

/// How mail leaves: written to this node's outbox at once, or queued in the cluster's
/// database right after the change that caused it committed (as the file is written after it on
/// one node) and written out by whichever node takes it first ([`deliver_queued`]).
#[derive(Debug)]
pub(crate) enum Mailer {
    /// Straight to the outbox.
    Files(Outbox),
    /// Through the database's queue.
    Queue {
        /// The database.
        db: Arc<PgStore>,
        /// Wakes the delivering task.
        wake: Arc<tokio::sync::Notify>,
    },
}

impl Mailer {
    /// Hands `mail` over durably; the account is already committed, so a failure is logged for
    /// the operator (the customer can use `recover`), not turned into a failed request.
    pub(crate) async fn send(&self, mail: Mail, now: DateTime<Utc>) {
        match self {
            Mailer::Files(outbox) => {
                let outbox = outbox.clone();
                let written = tokio::task::spawn_blocking(move || {
                    let mut id = [0u8; 8];
                    OsEntropy.fill(&mut id);
                    outbox.write(&mail, &hex::encode(id), now)
                })
                .await;
                match written {
                    Ok(Ok(path)) => tracing::info!(path = %path.display(), "mail written to the outbox"),
                    Ok(Err(e)) => tracing::error!(error = %e, "could not write mail to the outbox"),
                    Err(e) => tracing::error!(error = %e, "the outbox writer did not finish"),
                }
            }
            Mailer::Queue { db, wake, .. } => match db.queue_mail(mail.to, mail.subject, mail.body).await {
                Ok(id) => {
                    tracing::info!(id, "mail queued");
                    wake.notify_one();
                }
                Err(e) => tracing::error!(error = %e, "could not queue mail"),
            },
        }
    }
}

/// Writes queued mail to `outbox` until `stop` — every second, and whenever `wake` is
/// notified. A message is named after its queue id, so one this node writes again after a crash
/// (before its removal from the queue committed) replaces itself; only a node dying between the
/// two leaves a second copy, in another node's outbox.
pub(crate) async fn deliver_queued(
    db: Arc<PgStore>,
    outbox: Outbox,
    wake: Arc<tokio::sync::Notify>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut last_sweep = std::time::Instant::now();
    loop {
        let (db2, outbox2) = (db.clone(), outbox.clone());
        let delivered = tokio::task::spawn_blocking(move || {
            db2.deliver_mail(64, &mut |queued| {
                let at = DateTime::from_timestamp(queued.queued_at, 0).unwrap_or_default();
                let mail = Mail { to: queued.to.clone(), subject: queued.subject.clone(), body: queued.body.clone() };
                outbox2.write(&mail, &format!("q{}", queued.id), at).map(|_| ()).map_err(|e| e.to_string())
            })
        })
        .await;
        match delivered {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(messages = n, "queued mail written to the outbox"),
            Ok(Err(e)) => tracing::warn!(error = %e, "mail queue unavailable; trying again"),
            Err(e) => tracing::error!(error = %e, "the mail deliverer did not finish"),
        }
        if last_sweep.elapsed() > std::time::Duration::from_secs(60) {
            last_sweep = std::time::Instant::now();
            if let Err(e) = db.sweep().await {
                tracing::warn!(error = %e, "could not sweep expired sessions and rate-limit windows");
            }
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

impl Outbox {
    /// The outbox in `dir`, sending as `from`.
    pub(crate) fn new(dir: impl AsRef<Path>, from: &str) -> Outbox {
        Outbox { dir: dir.as_ref().to_owned(), from: from.to_owned() }
    }

    /// The message as RFC 5322 text (UTF-8 body, quoted-printable-free 8bit).
    pub(crate) fn render(&self, mail: &Mail, id: &str, date: DateTime<Utc>) -> String {
        let body = mail.body.replace("\r\n", "\n").replace('\n', "\r\n");
        format!(
            "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}@licet>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}",
            from = header_safe(&self.from),
            to = header_safe(&mail.to),
            subject = encode_header(&mail.subject),
            date = date.to_rfc2822(),
        )
    }

    /// Writes `mail` durably and returns its path.
    pub(crate) fn write(&self, mail: &Mail, id: &str, date: DateTime<Utc>) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let name = format!("{}-{id}.eml", date.format("%Y%m%dT%H%M%S"));
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(&name);
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(self.render(mail, id, date).as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_rfc5322_and_resist_header_injection() {
        let outbox = Outbox::new("/nonexistent", "licet@localhost");
        let mail = Mail {
            to: "a@example.com\r\nBcc: evil@example.com".into(),
            subject: "Ваш номер".into(),
            body: "line 1\nline 2\n".into(),
        };
        let text = outbox.render(&mail, "x1", DateTime::UNIX_EPOCH);
        assert!(text.contains("To: a@example.com  Bcc: evil@example.com\r\n"));
        assert!(!text.contains("\r\nBcc:"));
        assert!(text.contains("Subject: =?UTF-8?Q?"));
        assert!(text.ends_with("line 1\r\nline 2\r\n"));
        assert!(text.contains("\r\n\r\n"));
    }
}
