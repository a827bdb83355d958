//! What the servers of a cluster share besides the ledger (SPEC §7): their signing keys and
//! settings, portal sessions, rate-limit windows and the mail queue. A node keeps none of it in
//! its process, so any request may land on any node.
//!
//! Times are the database's (`now()`), one clock for every node.

use std::net::IpAddr;
use std::time::Duration;

use licet_core::Error as CoreError;

use super::PgStore;
use crate::error::Error;

/// What `init` wrote and every node checks its data directory against.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerFacts {
    /// `(kid, public key hex)` of every signing key the cluster knows.
    pub keys: Vec<(String, String)>,
    /// The SHA-256 of the admin token, hex.
    pub admin_hash: Option<String>,
    /// The vendor prefix of registration numbers.
    pub vendor_prefix: Option<String>,
    /// The signing key the nodes sign with, once `keys activate` chose one (SPEC §9); before,
    /// the first.
    pub active_kid: Option<String>,
    /// The ids of the keys `keys retire` retired.
    pub retired: Vec<String>,
}

/// The cluster's first signing key and settings, as `init` and `migrate` record them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Registration {
    /// The signing key's id.
    pub kid: String,
    /// Its public key, hex.
    pub public_key: String,
    /// The SHA-256 of the admin token, hex.
    pub admin_hash: String,
    /// The vendor prefix of registration numbers.
    pub vendor_prefix: String,
}

impl Registration {
    /// A registration of these facts.
    pub fn new(kid: &str, public_key: &str, admin_hash: &str, vendor_prefix: &str) -> Registration {
        Registration {
            kid: kid.to_owned(),
            public_key: public_key.to_owned(),
            admin_hash: admin_hash.to_owned(),
            vendor_prefix: vendor_prefix.to_owned(),
        }
    }

    /// Records it in `tx`; refuses a database that knows a key already.
    pub(crate) async fn record_in(&self, tx: &tokio_postgres::Transaction<'_>) -> Result<(), String> {
        let e = |e: tokio_postgres::Error| e.to_string();
        tx.execute("LOCK TABLE signing_keys IN EXCLUSIVE MODE", &[]).await.map_err(e)?;
        let known = tx.query_one("SELECT count(*) FROM signing_keys", &[]).await.map_err(e)?;
        if known.get::<_, i64>(0) != 0 {
            return Err("is already initialised: copy the data directory of a node of this cluster instead".into());
        }
        tx.execute("INSERT INTO signing_keys (kid, public_key) VALUES ($1, $2)", &[&self.kid, &self.public_key])
            .await
            .map_err(e)?;
        for (setting, value) in [("admin_token_sha256", &self.admin_hash), ("vendor_prefix", &self.vendor_prefix)] {
            tx.execute(
                "INSERT INTO settings (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                &[&setting, value],
            )
            .await
            .map_err(e)?;
        }
        Ok(())
    }
}

/// A portal session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedSession {
    /// The account it was opened for.
    pub account: String,
    /// The credential it was opened with.
    pub credential: String,
    /// The form token the next form must carry.
    pub csrf: String,
    /// A message for the next page.
    pub flash: Option<String>,
}

/// A message waiting in the mail queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuedMail {
    /// Its id in the queue.
    pub id: i64,
    /// When it was queued (Unix seconds).
    pub queued_at: i64,
    /// The recipient.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The text.
    pub body: String,
}

impl SharedSession {
    /// A new session's record, without a message.
    pub fn new(account: String, credential: String, csrf: String) -> SharedSession {
        SharedSession { account, credential, csrf, flash: None }
    }
}

fn session_of(row: &tokio_postgres::Row) -> SharedSession {
    SharedSession { account: row.get(0), credential: row.get(1), csrf: row.get(2), flash: row.get(3) }
}

impl PgStore {
    /// Records this cluster's first signing key, admin token hash and vendor prefix (`init`).
    /// Refuses a database that already knows another key: a second node copies the first
    /// node's data directory instead of running `init`.
    pub fn register_server(&self, registration: &Registration) -> Result<(), Error> {
        let name = self.name.clone();
        self.block_on(async {
            let fail = |e: String| Error::Database { database: name.clone(), message: e };
            let mut client = self.pool().get().await.map_err(|e| fail(e.to_string()))?;
            let tx = client.transaction().await.map_err(|e| fail(e.to_string()))?;
            registration.record_in(&tx).await.map_err(fail)?;
            tx.commit().await.map_err(|e| fail(e.to_string()))
        })
    }

    /// Records a signing key added to the cluster (`keys add`); a key it knows already is left.
    pub fn add_signing_key(&self, kid: &str, public_key: &str) -> Result<(), Error> {
        self.statement(
            "INSERT INTO signing_keys (kid, public_key) VALUES ($1, $2) ON CONFLICT (kid) DO NOTHING",
            &[&kid, &public_key],
        )
        .map(drop)
    }

    /// Records the signing key every node signs with from its next start (`keys activate`);
    /// the database must know it.
    pub fn set_active_key(&self, kid: &str) -> Result<(), Error> {
        let known = self.server_facts()?.keys.iter().any(|(k, _)| k == kid);
        if !known {
            return Err(Error::Database {
                database: self.name.clone(),
                message: format!("knows no signing key {kid}: add it with --database first"),
            });
        }
        self.statement(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[&"active_kid", &kid],
        )
        .map(drop)
    }

    /// Records that a signing key signs nothing more (`keys retire`).
    pub fn retire_signing_key(&self, kid: &str) -> Result<(), Error> {
        let updated = self.statement("UPDATE signing_keys SET retired = true WHERE kid = $1", &[&kid])?;
        if updated == 0 {
            let message = format!("knows no signing key {kid}");
            return Err(Error::Database { database: self.name.clone(), message });
        }
        Ok(())
    }

    /// Runs one statement of the keys' administration (a command line, not a request).
    fn statement(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<u64, Error> {
        let name = self.name.clone();
        self.block_on(async {
            let fail = |e: String| Error::Database { database: name.clone(), message: e };
            let client = self.pool().get().await.map_err(|e| fail(e.to_string()))?;
            client.execute(sql, params).await.map_err(|e| fail(e.to_string()))
        })
    }

    /// The keys and settings `init` recorded.
    pub fn server_facts(&self) -> Result<ServerFacts, Error> {
        let name = self.name.clone();
        self.block_on(async {
            let fail = |e: String| Error::Database { database: name.clone(), message: e };
            let client = self.pool().get().await.map_err(|e| fail(e.to_string()))?;
            let rows = client
                .query("SELECT kid, public_key, retired FROM signing_keys ORDER BY added_at, kid", &[])
                .await
                .map_err(|e| fail(e.to_string()))?;
            let keys = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            let retired = rows.iter().filter(|r| r.get::<_, bool>(2)).map(|r| r.get(0)).collect();
            let setting = async |setting: &str| -> Result<Option<String>, Error> {
                let row = client
                    .query_opt("SELECT value FROM settings WHERE name = $1", &[&setting])
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                Ok(row.map(|r| r.get(0)))
            };
            let admin_hash = setting("admin_token_sha256").await?;
            let vendor_prefix = setting("vendor_prefix").await?;
            let active_kid = setting("active_kid").await?;
            Ok(ServerFacts { keys, admin_hash, vendor_prefix, active_kid, retired })
        })
    }

    /// Runs a statement of the shared state on the store's runtime, from any runtime.
    async fn shared<T: Send + 'static>(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync>>,
        read: impl FnOnce(Vec<tokio_postgres::Row>) -> T + Send + 'static,
    ) -> Result<T, CoreError> {
        self.shared_within(self.timeout(), sql, params, read).await
    }

    /// [`PgStore::shared`] with its own deadline, for a statement that reads much.
    async fn shared_within<T: Send + 'static>(
        &self,
        timeout: std::time::Duration,
        sql: &'static str,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync>>,
        read: impl FnOnce(Vec<tokio_postgres::Row>) -> T + Send + 'static,
    ) -> Result<T, CoreError> {
        let pool = self.pool().clone();
        let name = self.name.clone();
        self.spawn(async move {
            let unavailable = |e: &str| CoreError::Unavailable(format!("database {name}: {e}"));
            let client = match tokio::time::timeout(timeout, pool.get()).await {
                Ok(got) => got.map_err(|e| super::pool_failed(&name, &e))?,
                Err(_) => return Err(unavailable("no connection in time")),
            };
            let work = async {
                let statement = client.prepare_cached(sql).await.map_err(|e| super::failed(&name, &e))?;
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                    params.iter().map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
                let rows = client.query(&statement, &refs).await.map_err(|e| super::failed(&name, &e))?;
                Ok(read(rows))
            };
            let answered = tokio::time::timeout(timeout, work).await;
            match answered {
                Ok(Err(CoreError::Unavailable(e))) => {
                    // Lost, or inside a failed transaction: never hand this connection out again.
                    drop(deadpool_postgres::Object::take(client));
                    Err(CoreError::Unavailable(e))
                }
                Ok(result) => result,
                Err(_) => {
                    // The connection may be mid-message or dead: never hand it out again.
                    drop(deadpool_postgres::Object::take(client));
                    Err(unavailable("no answer in time"))
                }
            }
        })
        .await
    }

    /// Opens a portal session under the SHA-256 of its id, for `idle`; an account keeps at most
    /// `per_account` sessions (the least recently used go).
    pub async fn open_session(
        &self,
        id_hash: [u8; 32],
        session: SharedSession,
        idle: Duration,
        per_account: i64,
    ) -> Result<(), CoreError> {
        let seconds = idle.as_secs_f64();
        self.shared(
            "WITH opened AS (INSERT INTO portal_sessions (id_hash, account_id, credential, csrf, flash, expires_at) \
               VALUES ($1, $2, $3, $4, NULL, now() + make_interval(secs => $5)) RETURNING account_id) \
             DELETE FROM portal_sessions WHERE id_hash IN ( \
               SELECT id_hash FROM portal_sessions WHERE account_id = (SELECT account_id FROM opened) \
               ORDER BY expires_at DESC OFFSET $6)",
            vec![
                Box::new(id_hash.to_vec()),
                Box::new(session.account),
                Box::new(session.credential),
                Box::new(session.csrf),
                Box::new(seconds),
                Box::new(per_account - 1),
            ],
            |_| (),
        )
        .await
    }

    /// The live session under `id_hash`, its idle time started again.
    pub async fn session(&self, id_hash: [u8; 32], idle: Duration) -> Result<Option<SharedSession>, CoreError> {
        self.shared(
            "UPDATE portal_sessions SET expires_at = now() + make_interval(secs => $2) \
             WHERE id_hash = $1 AND expires_at > now() RETURNING account_id, credential, csrf, flash",
            vec![Box::new(id_hash.to_vec()), Box::new(idle.as_secs_f64())],
            |rows| rows.first().map(session_of),
        )
        .await
    }

    /// Accepts a form of the session under `id_hash` if it carries the session's form token,
    /// and replaces the token with `next` (single use). Tokens are compared by their digests, so
    /// the comparison's timing tells nothing about the token.
    pub async fn accept_form(
        &self,
        id_hash: [u8; 32],
        csrf: String,
        next: String,
    ) -> Result<Option<SharedSession>, CoreError> {
        self.shared(
            "UPDATE portal_sessions SET csrf = $3 \
             WHERE id_hash = $1 AND expires_at > now() \
               AND sha256(convert_to(csrf, 'UTF8')) = sha256(convert_to($2, 'UTF8')) \
             RETURNING account_id, credential, csrf, flash",
            vec![Box::new(id_hash.to_vec()), Box::new(csrf), Box::new(next)],
            |rows| rows.first().map(session_of),
        )
        .await
    }

    /// Replaces the session's message for its next page, returning the one it had.
    pub async fn swap_flash(&self, id_hash: [u8; 32], message: Option<String>) -> Result<Option<String>, CoreError> {
        self.shared(
            "UPDATE portal_sessions p SET flash = $2 FROM portal_sessions old \
             WHERE p.id_hash = $1 AND old.id_hash = p.id_hash RETURNING old.flash",
            vec![Box::new(id_hash.to_vec()), Box::new(message)],
            |rows| rows.first().and_then(|r| r.get::<_, Option<String>>(0)),
        )
        .await
    }

    /// Closes a session.
    pub async fn close_session(&self, id_hash: [u8; 32]) -> Result<(), CoreError> {
        self.shared("DELETE FROM portal_sessions WHERE id_hash = $1", vec![Box::new(id_hash.to_vec())], |_| ()).await
    }

    /// `Err(seconds to wait)` when `client` has used up its `per_minute` events in its window.
    pub async fn rate_check(&self, client: IpAddr, per_minute: u32) -> Result<Result<(), u64>, CoreError> {
        self.shared(
            "SELECT count, ceil(extract(epoch FROM window_start + interval '60 seconds' - now()))::bigint \
             FROM rate_limits WHERE client = $1 AND window_start > now() - interval '60 seconds'",
            vec![Box::new(client)],
            move |rows| match rows.first() {
                Some(row) if row.get::<_, i32>(0) >= per_minute as i32 => Err(row.get::<_, i64>(1).clamp(1, 60) as u64),
                _ => Ok(()),
            },
        )
        .await
    }

    /// Counts one event for `client` and says, in the same statement, whether it stayed within
    /// `per_minute` in its window: `Err(seconds to wait)` when it did not. Atomic, so requests
    /// racing on several nodes cannot all pass one window's last place.
    pub async fn rate_spend(&self, client: IpAddr, per_minute: u32) -> Result<Result<(), u64>, CoreError> {
        self.shared(
            "INSERT INTO rate_limits AS r (client, window_start, count) VALUES ($1, now(), 1) \
             ON CONFLICT (client) DO UPDATE SET \
               window_start = CASE WHEN r.window_start <= now() - interval '60 seconds' THEN now() ELSE r.window_start END, \
               count = CASE WHEN r.window_start <= now() - interval '60 seconds' THEN 1 ELSE r.count + 1 END \
             RETURNING count, ceil(extract(epoch FROM window_start + interval '60 seconds' - now()))::bigint",
            vec![Box::new(client)],
            move |rows| match rows.first() {
                Some(row) if row.get::<_, i32>(0) > per_minute as i32 => Err(row.get::<_, i64>(1).clamp(1, 60) as u64),
                _ => Ok(()),
            },
        )
        .await
    }

    /// Drops expired sessions and rate-limit windows; any node may run it at any time.
    pub async fn sweep(&self) -> Result<(), CoreError> {
        self.shared(
            "WITH s AS (DELETE FROM portal_sessions WHERE expires_at <= now()) \
             DELETE FROM rate_limits WHERE window_start <= now() - interval '60 seconds'",
            vec![],
            |_| (),
        )
        .await
    }

    /// Queues a message; it is committed when this returns.
    pub async fn queue_mail(&self, to: String, subject: String, body: String) -> Result<i64, CoreError> {
        self.shared(
            "INSERT INTO mail_queue (recipient, subject, body) VALUES ($1, $2, $3) RETURNING id",
            vec![Box::new(to), Box::new(subject), Box::new(body)],
            |rows| rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0),
        )
        .await
    }

    /// Delivers queued messages, oldest first, at most `limit`: each is locked (`FOR UPDATE SKIP
    /// LOCKED`, so two nodes never take the same one at once), handed to `deliver`, and deleted
    /// in the same transaction once `deliver` succeeded, or kept with its error when it failed.
    /// Delivered at least once: twice only if this node dies or loses the database between
    /// `deliver` and the commit. The whole call is bounded by a deadline. Blocking: call it from
    /// a thread that may block.
    pub fn deliver_mail(
        &self,
        limit: i64,
        deliver: &mut dyn FnMut(&QueuedMail) -> Result<(), String>,
    ) -> Result<usize, CoreError> {
        let deadline = self.timeout() * 10;
        let work = async {
            let mut client = self.pool().get().await.map_err(|e| super::pool_failed(&self.name, &e))?;
            let mut delivered = 0;
            for _ in 0..limit.max(0) {
                let tx = client.transaction().await.map_err(|e| self.failed(&e))?;
                let row = tx
                    .query_opt(
                        "SELECT id, extract(epoch FROM queued_at)::bigint, recipient, subject, body FROM mail_queue \
                         ORDER BY attempts, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                        &[],
                    )
                    .await
                    .map_err(|e| self.failed(&e))?;
                let Some(row) = row else { break };
                let mail = QueuedMail {
                    id: row.get(0),
                    queued_at: row.get(1),
                    to: row.get(2),
                    subject: row.get(3),
                    body: row.get(4),
                };
                match deliver(&mail) {
                    Ok(()) => {
                        tx.execute("DELETE FROM mail_queue WHERE id = $1", &[&mail.id])
                            .await
                            .map_err(|e| self.failed(&e))?;
                        tx.commit().await.map_err(|e| self.failed(&e))?;
                        delivered += 1;
                    }
                    Err(why) => {
                        tx.execute(
                            "UPDATE mail_queue SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                            &[&mail.id, &why],
                        )
                        .await
                        .map_err(|e| self.failed(&e))?;
                        tx.commit().await.map_err(|e| self.failed(&e))?;
                        break;
                    }
                }
            }
            Ok(delivered)
        };
        self.block_on(async {
            match tokio::time::timeout(deadline, work).await {
                Ok(result) => result,
                Err(_) => Err(self.unavailable("the mail queue did not answer in time")),
            }
        })
    }

    /// Messages waiting in the queue.
    pub async fn mail_queued(&self) -> Result<i64, CoreError> {
        self.shared("SELECT count(*) FROM mail_queue", vec![], |rows| {
            rows.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0)
        })
        .await
    }

    /// Accounts, bindings and sessions live at `now` (Unix seconds), counted by the database in
    /// one read-committed query (for `/metrics`: no serializable transaction, so it never makes
    /// a writer retry). It reads every account, so it gets twenty of the store's deadlines.
    pub async fn census(&self, now: i64) -> Result<(i64, i64, i64), CoreError> {
        self.shared_within(
            self.timeout() * 20,
            "SELECT (SELECT count(*) FROM records WHERE kind = 'account'), \
                    (SELECT count(*) FROM records a, jsonb_array_elements(COALESCE(a.doc->'bindings', '[]'::jsonb)) b \
                      WHERE a.kind = 'account'), \
                    (SELECT count(*) FROM records a, jsonb_array_elements(COALESCE(a.doc->'sessions', '[]'::jsonb)) s \
                      WHERE a.kind = 'account' AND (s->>'lease_until')::bigint > $1)",
            vec![Box::new(now)],
            |rows| rows.first().map_or((0, 0, 0), |r| (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, i64>(2))),
        )
        .await
    }

    /// Whether the database answers (for `/v1/health`).
    pub async fn ping(&self) -> Result<(), CoreError> {
        self.shared("SELECT 1", vec![], |_| ()).await
    }
}
