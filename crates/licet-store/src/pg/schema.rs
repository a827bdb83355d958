//! The database's schema and its migrations, applied at start by every node.
//!
//! Migrations run in one transaction under a transaction-level advisory lock, so any number of
//! nodes starting at once apply each exactly once; a database whose schema is newer than this
//! build's is refused and left alone. The views are what a vendor's reports and support staff
//! query (documented in `docs/cluster.md`); licet itself reads only `records.body`, lists
//! `records.key` by `kind`, and counts accounts, bindings and live sessions in `records.doc` for
//! `/metrics`.

use tokio_postgres::Client;

/// The schema version this build writes.
pub const PG_SCHEMA_VERSION: i32 = 3;

/// The advisory lock every migrating node takes (any constant unlikely to collide: "licet" in
/// ASCII).
const MIGRATION_LOCK: i64 = 0x6c_69_63_65_74;

/// Each entry brings the schema from its index to the next version.
const MIGRATIONS: &[&str] = &[
    // 0 → 1: the ledger's records, the servers' shared state, the views.
    r#"
CREATE TABLE records (
    key bytea PRIMARY KEY,
    kind text NOT NULL,
    body bytea NOT NULL,
    doc jsonb NOT NULL
);
CREATE INDEX records_by_kind ON records (kind);

CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    public_key text NOT NULL UNIQUE,
    added_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE settings (
    name text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE portal_sessions (
    id_hash bytea PRIMARY KEY,
    account_id text NOT NULL,
    credential text NOT NULL,
    csrf text NOT NULL,
    flash text,
    expires_at timestamptz NOT NULL
);
CREATE INDEX portal_sessions_by_account ON portal_sessions (account_id, expires_at);
CREATE INDEX portal_sessions_by_expiry ON portal_sessions (expires_at);
CREATE TABLE rate_limits (
    client inet PRIMARY KEY,
    window_start timestamptz NOT NULL,
    count integer NOT NULL
);
CREATE TABLE mail_queue (
    id bigserial PRIMARY KEY,
    queued_at timestamptz NOT NULL DEFAULT now(),
    recipient text NOT NULL,
    subject text NOT NULL,
    body text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    last_error text
);

CREATE VIEW products AS
SELECT doc->>'id' AS id,
       doc->>'name' AS name,
       (doc->>'trial_days')::integer AS trial_days,
       (doc->>'trial_seats')::integer AS trial_seats,
       (doc->>'offline_lease_hours')::integer AS offline_lease_hours,
       (doc->>'clock_tolerance_minutes')::integer AS clock_tolerance_minutes,
       (doc->>'refresh_hours')::integer AS refresh_hours
FROM records WHERE kind = 'product';

CREATE VIEW accounts AS
SELECT doc->>'id' AS id,
       doc->>'email' AS email,
       doc->>'organization' AS organization,
       doc->>'contact' AS contact,
       doc->>'phone' AS phone,
       right(doc->>'number', 5) AS number_last_group,
       to_timestamp((doc->>'created_at')::bigint) AS created_at,
       ARRAY(SELECT jsonb_array_elements_text(doc->'trials_used')) AS trials_used
FROM records WHERE kind = 'account';

CREATE VIEW licenses AS
SELECT l->>'id' AS id,
       a.doc->>'id' AS account_id,
       l->>'product' AS product,
       l->>'kind' AS kind,
       (l->>'seats')::integer AS seats,
       (SELECT count(*) FROM jsonb_array_elements(a.doc->'bindings') b
         WHERE b->>'license_id' = l->>'id')::integer AS seats_used,
       to_timestamp((l->>'starts_at')::bigint) AS starts_at,
       to_timestamp((l->>'expires_at')::bigint) AS expires_at
FROM records a, jsonb_array_elements(a.doc->'licenses') l
WHERE a.kind = 'account';

CREATE VIEW bindings AS
SELECT b->>'id' AS id,
       a.doc->>'id' AS account_id,
       b->>'license_id' AS license_id,
       b->>'product' AS product,
       b->'host'->>'hostname' AS hostname,
       b->'host'->>'os' AS os,
       b->'host'->'fingerprint' AS fingerprint,
       to_timestamp((b->>'bound_at')::bigint) AS bound_at,
       to_timestamp((b->>'last_seen')::bigint) AS last_seen
FROM records a, jsonb_array_elements(a.doc->'bindings') b
WHERE a.kind = 'account';

CREATE VIEW coupons AS
SELECT right(doc->>'body', 5) AS code_last_group,
       doc->>'product' AS product,
       (doc->>'seats')::integer AS seats,
       (doc->>'term_days')::integer AS term_days,
       to_timestamp((doc->>'issued_at')::bigint) AS issued_at,
       doc->'redeemed'->>'account_id' AS redeemed_by,
       doc->'redeemed'->>'license_id' AS license_id,
       to_timestamp((doc->'redeemed'->>'at')::bigint) AS redeemed_at
FROM records WHERE kind = 'coupon';
"#,
    // 1 → 2: editions (features, grace, reset limits, coupon kinds) in the views; new columns
    // come last, as `CREATE OR REPLACE VIEW` requires. Records written before carry none of
    // the new fields, so each has its default here as in licet.
    r#"
CREATE OR REPLACE VIEW products AS
SELECT doc->>'id' AS id,
       doc->>'name' AS name,
       (doc->>'trial_days')::integer AS trial_days,
       (doc->>'trial_seats')::integer AS trial_seats,
       (doc->>'offline_lease_hours')::integer AS offline_lease_hours,
       (doc->>'clock_tolerance_minutes')::integer AS clock_tolerance_minutes,
       (doc->>'refresh_hours')::integer AS refresh_hours,
       ARRAY(SELECT jsonb_array_elements_text(COALESCE(doc->'features', '[]'::jsonb))) AS features,
       COALESCE((doc->>'grace_days')::integer, 0) AS grace_days,
       COALESCE((doc->>'max_resets_per_30_days')::integer, 0) AS max_resets_per_30_days
FROM records WHERE kind = 'product';

CREATE OR REPLACE VIEW licenses AS
SELECT l->>'id' AS id,
       a.doc->>'id' AS account_id,
       l->>'product' AS product,
       l->>'kind' AS kind,
       (l->>'seats')::integer AS seats,
       (SELECT count(*) FROM jsonb_array_elements(a.doc->'bindings') b
         WHERE b->>'license_id' = l->>'id')::integer AS seats_used,
       to_timestamp((l->>'starts_at')::bigint) AS starts_at,
       to_timestamp((l->>'expires_at')::bigint) AS expires_at,
       CASE WHEN l ? 'features' AND jsonb_typeof(l->'features') = 'array'
            THEN ARRAY(SELECT f FROM jsonb_array_elements_text(l->'features') f
                       WHERE f = ANY (p.features))
            ELSE p.features END AS features,
       to_timestamp((l->>'expires_at')::bigint) + make_interval(days => COALESCE(p.grace_days, 0)) AS grace_until,
       (SELECT count(*) FROM jsonb_array_elements_text(COALESCE(l->'resets', '[]'::jsonb)) r
         WHERE r::bigint >= extract(epoch FROM now() - interval '30 days'))::integer AS resets_last_30_days,
       CASE WHEN p.max_resets_per_30_days > 0 THEN greatest(0, p.max_resets_per_30_days -
            (SELECT count(*) FROM jsonb_array_elements_text(COALESCE(l->'resets', '[]'::jsonb)) r
              WHERE r::bigint >= extract(epoch FROM now() - interval '30 days'))::integer) END AS resets_left
FROM records a
CROSS JOIN LATERAL jsonb_array_elements(a.doc->'licenses') l
LEFT JOIN products p ON p.id = l->>'product'
WHERE a.kind = 'account';

CREATE OR REPLACE VIEW coupons AS
SELECT right(doc->>'body', 5) AS code_last_group,
       doc->>'product' AS product,
       (doc->>'seats')::integer AS seats,
       (doc->>'term_days')::integer AS term_days,
       to_timestamp((doc->>'issued_at')::bigint) AS issued_at,
       doc->'redeemed'->>'account_id' AS redeemed_by,
       doc->'redeemed'->>'license_id' AS license_id,
       to_timestamp((doc->'redeemed'->>'at')::bigint) AS redeemed_at,
       COALESCE(doc->>'kind', 'license') AS kind,
       (doc->>'days')::integer AS days,
       CASE WHEN jsonb_typeof(doc->'features') = 'array'
            THEN ARRAY(SELECT jsonb_array_elements_text(doc->'features')) END AS features
FROM records WHERE kind = 'coupon';
"#,
    // 2 → 3: floating licenses (SPEC §11), air-gapped activation (§8), retired signing keys
    // (§9). Licenses show their model, and for a floating one
    // `seats_used` counts the sessions live now; the `sessions` view lists every stored
    // session, `live` saying whether it holds its seat now (dead ones are tidied away at the
    // account's next session command).
    r#"
ALTER TABLE signing_keys ADD COLUMN retired boolean NOT NULL DEFAULT false;

CREATE OR REPLACE VIEW products AS
SELECT doc->>'id' AS id,
       doc->>'name' AS name,
       (doc->>'trial_days')::integer AS trial_days,
       (doc->>'trial_seats')::integer AS trial_seats,
       (doc->>'offline_lease_hours')::integer AS offline_lease_hours,
       (doc->>'clock_tolerance_minutes')::integer AS clock_tolerance_minutes,
       (doc->>'refresh_hours')::integer AS refresh_hours,
       ARRAY(SELECT jsonb_array_elements_text(COALESCE(doc->'features', '[]'::jsonb))) AS features,
       COALESCE((doc->>'grace_days')::integer, 0) AS grace_days,
       COALESCE((doc->>'max_resets_per_30_days')::integer, 0) AS max_resets_per_30_days,
       COALESCE((doc->>'session_lease_seconds')::integer, 900) AS session_lease_seconds,
       COALESCE((doc->>'max_borrow_hours')::integer, 0) AS max_borrow_hours,
       COALESCE((doc->>'offline_activation_days')::integer, 30) AS offline_activation_days
FROM records WHERE kind = 'product';

CREATE VIEW sessions AS
SELECT s->>'id' AS id,
       a.doc->>'id' AS account_id,
       s->>'license_id' AS license_id,
       s->>'product' AS product,
       s->'host'->>'hostname' AS hostname,
       s->'host'->>'os' AS os,
       s->'host'->'fingerprint' AS fingerprint,
       NULLIF(COALESCE(s->>'user', ''), '') AS "user",
       to_timestamp((s->>'started_at')::bigint) AS started_at,
       to_timestamp((s->>'last_heartbeat')::bigint) AS last_heartbeat,
       to_timestamp((s->>'lease_until')::bigint) AS lease_until,
       COALESCE((s->>'borrowed')::boolean, false) AS borrowed,
       (s->>'lease_until')::bigint > extract(epoch FROM now()) AS live
FROM records a, jsonb_array_elements(COALESCE(a.doc->'sessions', '[]'::jsonb)) s
WHERE a.kind = 'account';

CREATE OR REPLACE VIEW licenses AS
SELECT l->>'id' AS id,
       a.doc->>'id' AS account_id,
       l->>'product' AS product,
       l->>'kind' AS kind,
       (l->>'seats')::integer AS seats,
       CASE WHEN l->>'model' = 'floating'
            THEN (SELECT count(*) FROM jsonb_array_elements(COALESCE(a.doc->'sessions', '[]'::jsonb)) s
                   WHERE s->>'license_id' = l->>'id'
                     AND (s->>'lease_until')::bigint > extract(epoch FROM now()))
            ELSE (SELECT count(*) FROM jsonb_array_elements(a.doc->'bindings') b
                   WHERE b->>'license_id' = l->>'id') END::integer AS seats_used,
       to_timestamp((l->>'starts_at')::bigint) AS starts_at,
       to_timestamp((l->>'expires_at')::bigint) AS expires_at,
       CASE WHEN l ? 'features' AND jsonb_typeof(l->'features') = 'array'
            THEN ARRAY(SELECT f FROM jsonb_array_elements_text(l->'features') f
                       WHERE f = ANY (p.features))
            ELSE p.features END AS features,
       to_timestamp((l->>'expires_at')::bigint) + make_interval(days => COALESCE(p.grace_days, 0)) AS grace_until,
       (SELECT count(*) FROM jsonb_array_elements_text(COALESCE(l->'resets', '[]'::jsonb)) r
         WHERE r::bigint >= extract(epoch FROM now() - interval '30 days'))::integer AS resets_last_30_days,
       CASE WHEN p.max_resets_per_30_days > 0 THEN greatest(0, p.max_resets_per_30_days -
            (SELECT count(*) FROM jsonb_array_elements_text(COALESCE(l->'resets', '[]'::jsonb)) r
              WHERE r::bigint >= extract(epoch FROM now() - interval '30 days'))::integer) END AS resets_left,
       COALESCE(l->>'model', 'host') AS model
FROM records a
CROSS JOIN LATERAL jsonb_array_elements(a.doc->'licenses') l
LEFT JOIN products p ON p.id = l->>'product'
WHERE a.kind = 'account';

CREATE OR REPLACE VIEW coupons AS
SELECT right(doc->>'body', 5) AS code_last_group,
       doc->>'product' AS product,
       (doc->>'seats')::integer AS seats,
       (doc->>'term_days')::integer AS term_days,
       to_timestamp((doc->>'issued_at')::bigint) AS issued_at,
       doc->'redeemed'->>'account_id' AS redeemed_by,
       doc->'redeemed'->>'license_id' AS license_id,
       to_timestamp((doc->'redeemed'->>'at')::bigint) AS redeemed_at,
       COALESCE(doc->>'kind', 'license') AS kind,
       (doc->>'days')::integer AS days,
       CASE WHEN jsonb_typeof(doc->'features') = 'array'
            THEN ARRAY(SELECT jsonb_array_elements_text(doc->'features')) END AS features,
       CASE WHEN COALESCE(doc->>'kind', 'license') = 'license'
            THEN COALESCE(doc->>'model', 'host') END AS model
FROM records WHERE kind = 'coupon';
"#,
];

/// What [`migrate`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Migrated {
    /// The version before.
    pub(crate) from: i32,
    /// The version now.
    pub(crate) to: i32,
}

/// Why the schema cannot be brought up to date.
#[derive(Debug)]
pub(crate) enum SchemaError {
    /// Written by a newer release.
    Newer(i32),
    /// The database failed.
    Database(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for SchemaError {
    fn from(e: tokio_postgres::Error) -> SchemaError {
        SchemaError::Database(e)
    }
}

/// Brings the schema up to date; safe with several nodes starting at once.
pub(crate) async fn migrate(client: &mut Client) -> Result<Migrated, SchemaError> {
    migrate_to(client, PG_SCHEMA_VERSION).await
}

/// Brings the schema to `target` (at most this build's version): what an earlier release left,
/// for the tests of the migrations after it.
pub(crate) async fn migrate_to(client: &mut Client, target: i32) -> Result<Migrated, SchemaError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    let exists = tx.query_one("SELECT to_regclass('licet_schema') IS NOT NULL", &[]).await?;
    if !exists.get::<_, bool>(0) {
        tx.batch_execute("CREATE TABLE licet_schema (version integer NOT NULL)").await?;
    }
    let row = tx.query_opt("SELECT version FROM licet_schema", &[]).await?;
    let from: i32 = match row {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO licet_schema (version) VALUES (0)", &[]).await?;
            0
        }
    };
    if from > PG_SCHEMA_VERSION {
        return Err(SchemaError::Newer(from));
    }
    let to = target.clamp(from, PG_SCHEMA_VERSION);
    for sql in MIGRATIONS.iter().take(to as usize).skip(from as usize) {
        tx.batch_execute(sql).await?;
    }
    tx.execute("UPDATE licet_schema SET version = $1", &[&to]).await?;
    tx.commit().await?;
    Ok(Migrated { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_migration_per_version() {
        assert_eq!(MIGRATIONS.len(), PG_SCHEMA_VERSION as usize);
    }
}
