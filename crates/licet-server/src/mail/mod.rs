//! Delivering the mail the ledger queues (SPEC §13).
//!
//! A registration or a recovery queues its mail in the store, in the transaction of the change
//! that causes it ([`licet_core::Mail`]). Each node runs one [`Postman`]: every second, and
//! whenever a request queued something, it lists the queue, *claims* each due mail in a
//! transaction (so that of several nodes on one database exactly one takes it), words it in the
//! account's language ([`text`]), builds the message with lettre (RFC 2047 headers, folded lines,
//! a transfer encoding for the text), hands it over — by SMTP with `serve --smtp`, or as an
//! `.eml` file in `D/outbox/` — and then deletes it. A failed attempt is put back with a doubling
//! wait (up to an hour) and kept until it is delivered. A node that dies between handing a
//! message over and deleting it leaves a claim that lapses after [`CLAIM`]; the message is then
//! sent again (at least once, never lost). Each claim carries a fresh token, and only the
//! delivery holding it deletes the mail or puts it back. A message kind written by a newer release
//! ([`licet_core::Message::Unknown`] here) is left queued for a node that can word it.

mod outbox;
mod text;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use licet_core::{Error, Mail, RecordKey, Table};
use licet_store::{PgStore, StoreExt};

use crate::app::App;
pub(crate) use outbox::Outbox;

/// How long a claim keeps other nodes off a mail (longer than an SMTP exchange may take).
const CLAIM: chrono::Duration = chrono::Duration::minutes(2);
/// The longest an SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Queue entries listed at once.
const PAGE: usize = 500;
/// The longest one message's hand-over may take, well within [`CLAIM`].
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Between rounds when nothing wakes the postman.
const PAUSE: Duration = Duration::from_secs(1);

/// Where mail goes.
pub(crate) enum Transport {
    /// `.eml` files for the operator's relay.
    Files(Outbox),
    /// An SMTP server (`serve --smtp smtp://…` or `smtps://user:pass@host:port`).
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Files(outbox) => f.debug_tuple("Files").field(outbox).finish(),
            // The URL may carry a password.
            Transport::Smtp(_) => f.write_str("Smtp"),
        }
    }
}

impl Transport {
    /// SMTP to `url` (lettre's URL form: `smtp://host:port`, `smtps://user:pass@host:port`,
    /// `smtp://host?tls=required` for STARTTLS), or files in `outbox`.
    pub(crate) fn new(smtp: Option<&str>, outbox: Outbox) -> anyhow::Result<Transport> {
        let Some(url) = smtp else { return Ok(Transport::Files(outbox)) };
        if sends_password_in_clear(url) {
            anyhow::bail!(
                "--smtp: a user and password over plain smtp:// would cross the network readable; use smtps:// or add ?tls=required"
            );
        }
        // rustls picks its crypto provider process-wide; installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("--smtp: {e}"))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Transport::Smtp(Box::new(transport)))
    }

    /// Hands `message` over; queue id `id` names the file.
    async fn send(&self, message: lettre::Message, id: &str, date: DateTime<Utc>) -> Result<String, String> {
        match self {
            Transport::Smtp(smtp) => match smtp.send(message).await {
                Ok(response) => Ok(format!("accepted by SMTP: {}", response.code())),
                Err(e) => Err(format!("SMTP: {e}")),
            },
            Transport::Files(outbox) => {
                let (outbox, id) = (outbox.clone(), id.to_owned());
                let written = tokio::task::spawn_blocking(move || outbox.write(&message.formatted(), &id, date)).await;
                match written {
                    Ok(Ok(path)) => Ok(format!("written to {}", path.display())),
                    Ok(Err(e)) => Err(format!("outbox: {e}")),
                    Err(e) => Err(format!("outbox writer: {e}")),
                }
            }
        }
    }
}

/// Whether an `smtp://` URL names a user (so a password) without insisting on STARTTLS: lettre
/// would then log in over a connection anyone on the path can read, or one whose STARTTLS offer
/// was stripped.
fn sends_password_in_clear(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("smtp://") else { return false };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    authority.contains('@') && !query.split('&').any(|pair| pair == "tls=required")
}

/// Builds the message of a queued mail.
fn build(mail: &Mail, id: &str, from: &Mailbox) -> Result<lettre::Message, String> {
    let to: Mailbox = mail.to.parse().map_err(|e| format!("recipient {:?}: {e}", mail.to))?;
    let words = text::words(&mail.message, mail.lang)
        .ok_or_else(|| format!("a {:?} message, which this release cannot word", mail.message))?;
    lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(words.subject)
        .date(mail.queued_at.into())
        .message_id(Some(format!("<{id}.{}@licet>", mail.queued_at.timestamp())))
        .header(ContentType::TEXT_PLAIN)
        .body(words.body)
        .map_err(|e| format!("building the message: {e}"))
}

/// Delivers this node's share of the queue until told to stop.
pub(crate) struct Postman {
    app: Arc<App>,
    transport: Transport,
    from: Mailbox,
    /// A cluster node also drains the database's older mail table (into `outbox`) and sweeps
    /// shared state.
    database: Option<Arc<PgStore>>,
    outbox: Outbox,
    /// Whether the older table may still hold mail (it is looked at until found empty).
    older_table: bool,
}

/// The outcome of one mail in a round.
enum Delivery {
    Sent,
    Failed,
    /// Not due, or another node has it.
    Skipped,
}

impl Postman {
    /// A postman for `app`'s store, sending from `from`; `outbox` is this node's directory.
    pub(crate) fn new(app: Arc<App>, transport: Transport, from: Mailbox, outbox: Outbox) -> Postman {
        let database = app.database.clone();
        Postman { app, transport, from, database, outbox, older_table: true }
    }

    /// Rounds every [`PAUSE`], and at once when a request queued mail, until `stop`.
    pub(crate) async fn run(mut self, stop: tokio::sync::watch::Receiver<bool>) {
        let mut last_sweep = std::time::Instant::now();
        let mut stopped = stop.clone();
        loop {
            if let Err(e) = self.round(&stop).await {
                tracing::warn!(error = %e, "the mail queue is unavailable; trying again");
            }
            if let Some(db) = self.database.clone() {
                if self.older_table {
                    self.older_table = self.drain_older_table(&db).await;
                }
                if last_sweep.elapsed() > Duration::from_secs(60) {
                    last_sweep = std::time::Instant::now();
                    if let Err(e) = db.sweep().await {
                        tracing::warn!(error = %e, "could not sweep expired sessions and rate-limit windows");
                    }
                }
            }
            if *stop.borrow() {
                return;
            }
            tokio::select! {
                _ = self.app.mail_wake.notified() => {}
                _ = tokio::time::sleep(PAUSE) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    /// Goes through the whole queue, a page at a time, and delivers what is due; one mail's
    /// trouble is logged and the round goes on. Stops early when told to.
    async fn round(&self, stop: &tokio::sync::watch::Receiver<bool>) -> Result<(), Error> {
        let mut after: Option<RecordKey> = None;
        let mut queued = 0;
        loop {
            let store = self.app.store.clone();
            let from = after.clone();
            let page = tokio::task::spawn_blocking(move || store.keys(Table::Mail, from.as_ref(), PAGE))
                .await
                .map_err(|e| Error::Internal(e.to_string()))??;
            queued += page.len();
            let Some(last) = page.last().cloned() else { break };
            for key in page {
                if *stop.borrow() {
                    return Ok(());
                }
                let RecordKey::Mail(id) = key else { continue };
                match self.deliver(&id).await {
                    Ok(Delivery::Sent) => metrics::counter!("licet_mail_sent_total").increment(1),
                    Ok(Delivery::Failed) => metrics::counter!("licet_mail_failures_total").increment(1),
                    Ok(Delivery::Skipped) => {}
                    Err(e) => tracing::warn!(id, error = %e, "a queued mail could not be handled; trying again later"),
                }
            }
            after = Some(last);
        }
        metrics::gauge!("licet_mail_queued").set(queued as f64);
        Ok(())
    }

    /// Runs `f` on the store in a transaction, on a thread that may block.
    async fn transact<T: Send + 'static>(
        &self,
        f: impl FnMut(&mut licet_core::Tx<'_>) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let store = self.app.store.clone();
        tokio::task::spawn_blocking(move || store.transact(f)).await.map_err(|e| Error::Internal(e.to_string()))?
    }

    /// Claims, sends and deletes one mail; puts it back for later if sending failed. Only the
    /// delivery that holds the claim removes the mail or puts it back.
    async fn deliver(&self, id: &str) -> Result<Delivery, Error> {
        let now = self.app.clock.now();
        let mut random = [0u8; 8];
        licet_core::Entropy::fill(&mut licet_store::OsEntropy, &mut random);
        let token = hex::encode(random);
        let (owned, mine) = (id.to_owned(), token.clone());
        let claimed = self
            .transact(move |tx| {
                let Some(mut mail) = tx.mail(&owned)? else { return Ok(None) };
                if !mail.claim(now, now + CLAIM, &mine) {
                    return Ok(None);
                }
                tx.put_mail(&owned, &mail);
                Ok(Some(mail))
            })
            .await?;
        let Some(mail) = claimed else { return Ok(Delivery::Skipped) };
        let sent = match build(&mail, id, &self.from) {
            Ok(message) => {
                match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message, id, mail.queued_at)).await {
                    Ok(sent) => sent,
                    Err(_) => Err(format!("no answer within {} s", SEND_TIMEOUT.as_secs())),
                }
            }
            Err(e) => Err(e),
        };
        let owned = id.to_owned();
        match sent {
            Ok(how) => {
                tracing::info!(id, lang = mail.lang.as_str(), "mail delivered: {how}");
                self.transact(move |tx| {
                    if tx.mail(&owned)?.is_some_and(|m| m.is_claimed_by(&token)) {
                        tx.delete(RecordKey::Mail(owned.clone()));
                    }
                    Ok(())
                })
                .await?;
                Ok(Delivery::Sent)
            }
            Err(why) => {
                let now = self.app.clock.now();
                tracing::warn!(id, attempts = mail.attempts + 1, error = %why, "mail not delivered; kept for a later attempt");
                self.transact(move |tx| {
                    let Some(mut mail) = tx.mail(&owned)? else { return Ok(()) };
                    if mail.is_claimed_by(&token) {
                        mail.failed(now, &why);
                        tx.put_mail(&owned, &mail);
                    }
                    Ok(())
                })
                .await?;
                Ok(Delivery::Failed)
            }
        }
    }

    /// Messages an earlier build of the cluster queued, already worded, in the database's
    /// `mail_queue` table: written to this node's outbox as that build did (by files even with
    /// `--smtp`). Returns whether the table may still hold some.
    async fn drain_older_table(&self, db: &Arc<PgStore>) -> bool {
        let (db, from, outbox) = (db.clone(), self.from.clone(), self.outbox.clone());
        let drained = tokio::task::spawn_blocking(move || {
            db.deliver_mail(64, &mut |queued| {
                let at = DateTime::from_timestamp(queued.queued_at, 0).unwrap_or_default();
                let to: Mailbox = queued.to.parse().map_err(|e| format!("recipient: {e}"))?;
                let message = lettre::Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(queued.subject.clone())
                    .date(at.into())
                    .header(ContentType::TEXT_PLAIN)
                    .body(queued.body.clone())
                    .map_err(|e| e.to_string())?;
                outbox.write(&message.formatted(), &format!("q{}", queued.id), at).map(drop).map_err(|e| e.to_string())
            })
        })
        .await;
        match drained {
            Ok(Ok(0)) => false,
            Ok(Ok(n)) => {
                tracing::info!(messages = n, "older queued mail written to the outbox");
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the older mail table is unavailable; trying again");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "the older mail table's drain did not finish");
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use licet_core::{Lang, Message};

    use super::*;

    fn mail(to: &str, lang: Lang) -> Mail {
        let message = Message::Registered {
            organization: "ООО «Ромашка и партнёры», филиал в Нижнем Новгороде".into(),
            product_name: "Журнал звонков для 1С:Предприятие".into(),
            number: "MIKO-00000-00000-00000-00000".into(),
            trial_ends: None,
        };
        Mail::new(to.into(), lang, message, DateTime::UNIX_EPOCH)
    }

    type Outcome = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn a_password_never_goes_over_plain_smtp() -> Outcome {
        assert!(sends_password_in_clear("smtp://user:secret@relay.example:25"));
        assert!(sends_password_in_clear("smtp://user:secret@relay.example:587?tls=opportunistic"));
        assert!(!sends_password_in_clear("smtp://user:secret@relay.example:587?tls=required"));
        assert!(!sends_password_in_clear("smtps://user:secret@relay.example:465"));
        assert!(!sends_password_in_clear("smtp://127.0.0.1:2525"));
        assert!(Transport::new(Some("smtp://u:p@relay.example"), Outbox::new("/nonexistent")).is_err());
        let debug = format!("{:?}", Transport::new(Some("smtps://u:secret@relay.example"), Outbox::new("/x"))?);
        assert!(!debug.contains("secret"), "{debug}");
        Ok(())
    }

    #[test]
    fn messages_follow_the_rfcs_and_resist_header_injection() -> Outcome {
        let from: Mailbox = "Лицензии MIKO <licenses@miko.example>".parse()?;
        let text = String::from_utf8(build(&mail("a@example.com", Lang::Ru), "id1", &from)?.formatted())?;
        let (head, _) = text.split_once("\r\n\r\n").ok_or("no blank line after the headers")?;
        for line in head.split("\r\n") {
            assert!(line.is_ascii() && line.len() <= 78, "{line}");
        }
        assert!(head.contains("Message-ID: <id1.0@licet>"), "{head}");
        assert!(head.contains("Content-Type: text/plain; charset=utf-8"), "{head}");
        // A recipient carrying a header of its own is not an address: the message is not built.
        for to in ["a@example.com\r\nBcc: evil@example.com", "a@example.com, evil@example.com", "<a@example.com>\nX: y"]
        {
            assert!(build(&mail(to, Lang::En), "id2", &from).is_err(), "{to:?}");
        }
        Ok(())
    }
}
