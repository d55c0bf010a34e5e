//! Every statement the backend sends, built once per backend from the
//! schema, table and channel names; public with the `bench` feature so the
//! benchmark can send the same statements without the library. Not a
//! stable API.
//!
//! Placeholders: `$1` is always the key of the lock's, semaphore's or
//! read/write lock's name ([`key_of`](crate::key_of)); the others are
//! listed per statement.
//! Durations are milliseconds (`int8`), and every time is the server's
//! `clock_timestamp()`: the time at which the statement evaluates it, not
//! the start of the transaction (`now()`), so a statement that waited for
//! another transaction's row lock judges expiry, and starts a lease, at the
//! moment it decides. Times come back as whole milliseconds since the Unix
//! epoch, rounded down, so a reported expiry is never later than the
//! stored one.
//!
//! A lease is live while `expires_at > clock_timestamp()`.

use shylock_core::backend::MAX_WAITERS;

mod permits;
pub mod rw;
pub use rw::RwStatements;

/// The SQL of one backend, built from its names.
#[derive(Debug, Clone)]
pub struct Statements {
    /// Creates the tables, the index and the fence sequence (one
    /// transaction, serialized by a transaction-scoped advisory lock so
    /// many processes may start at once).
    pub schema: String,
    /// `$2` owner, `$3` ttl ms, `$4` the full name when the key is a digest
    /// (else NULL); one row (fence, expiry ms) when taken.
    pub claim: String,
    /// `$2` owner, `$3` ttl ms; one row (expiry ms) when `$2` held it.
    pub extend: String,
    /// `$2` owner, `$3` a token of this release call; one row (count of
    /// released leases, 0 or 1). Clears the owner (the row and its fence
    /// stay) and records the call's token, so the same call sent again
    /// after a lost answer answers the same while a second release call
    /// answers 0; notifies the channel and sweeps a few rows that ended
    /// long ago.
    pub release: String,
    /// One row (owner, expiry ms, fence) when held.
    pub inspect: String,
    /// `$1` prefix, `$2` upper bound (NULL: none), `$3` after (NULL: none),
    /// `$4` limit; rows (name, owner, expiry ms, fence) in name order.
    pub list: String,
    /// One row (count of freed live leases, 0 or 1). Notifies the channel.
    pub force_release: String,
    /// `$2` owner, `$3` permits, `$4` ttl ms, `$5` full name or NULL; one
    /// row (granted, fence, expiry ms, stored permits, live holders).
    pub claim_permit: String,
    /// `$2` owner, `$3` ttl ms; one row (expiry ms) when `$2` held a permit.
    pub extend_permit: String,
    /// `$2` owner; one row (count of released permits). Notifies.
    pub release_permit: String,
    /// Rows (owner, expiry ms, fence, permits) of live permits.
    pub inspect_semaphore: String,
    /// Semaphores with live holders, by name prefix (`$1`, `$2` its upper
    /// bound), at most `$3`: (name, owner, expiry ms, fence, permits) per
    /// live holder, in name and fence order.
    pub list_semaphores: String,
    /// `$2` owner, `$3` ttl ms; one row (tickets ahead).
    pub enqueue: String,
    /// As `claim`, only for the first live ticket; removes it on a win.
    pub claim_fair: String,
    /// `$2` owner, `$3` ttl ms; one row when the ticket was live.
    pub extend_ticket: String,
    /// `$2` owner; one row (count of removed tickets).
    pub leave_queue: String,
    /// Lines with live tickets, by name prefix (`$1`, `$2` its upper
    /// bound), at most `$3`: (name, live tickets), in name order.
    pub list_queues: String,
    /// The statements of read/write locks.
    pub rw: RwStatements,
    /// The notification channel (for `LISTEN`).
    pub channel: String,
}

/// `x` (a `timestamptz`) as whole milliseconds since the epoch, rounded down.
fn ms(x: &str) -> String {
    format!("floor(extract(epoch FROM {x}) * 1000)::int8")
}

/// A double-quoted identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted string literal (standard conforming strings).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Rows a release sweeps besides its own: enough to outpace crashed
/// holders, few enough to keep a release cheap.
pub const SWEEP: u32 = 4;

/// How long a row is kept after its lease ended (released or expired)
/// before a release may sweep it. A claim that creates a row draws its
/// fence before it learns whether it will insert, so a row removed while
/// such a claim waits could let it insert an older fence; keeping ended
/// rows this long means that claim would have had to be in flight for
/// longer than this, and releases and force-releases only clear the owner.
pub const SWEEP_GRACE: std::time::Duration = std::time::Duration::from_secs(300);

/// Deletes up to [`SWEEP`] rows of `table` that ended over [`SWEEP_GRACE`]
/// ago, other than `$1`'s; rows another statement holds are skipped, not
/// waited for.
fn sweep(table: &str) -> String {
    let grace = format!("clock_timestamp() - interval '{}s'", SWEEP_GRACE.as_secs());
    format!(
        "DELETE FROM {table} WHERE key = ANY (ARRAY(
             SELECT key FROM {table} WHERE expires_at < {grace} AND key <> $1
             ORDER BY expires_at LIMIT {SWEEP} FOR UPDATE SKIP LOCKED))
           AND expires_at < {grace}"
    )
}

impl Statements {
    /// The statements for tables named after `table` in `schema`, waking
    /// waiters through `channel`.
    pub fn new(schema: &str, table: &str, channel: &str) -> Self {
        let q = |suffix: &str| format!("{}.{}", ident(schema), ident(&format!("{table}{suffix}")));
        let (locks, sems, tickets) = (q(""), q("_semaphores"), q("_tickets"));
        let rws = q("_rwlocks");
        let seq_name = format!("{}.{}", ident(schema), ident(&format!("{table}_fence")));
        let seq = literal(&seq_name);
        let chan = literal(channel);
        let now = "clock_timestamp()";
        let until = "clock_timestamp() + $3::int8 * interval '1 millisecond'";
        let exp = ms("expires_at");
        let schema_sql = format!(
            "SELECT pg_advisory_xact_lock(736368797, hashtext({lit}));
             CREATE SCHEMA IF NOT EXISTS {schema_id};
             CREATE SEQUENCE IF NOT EXISTS {seq_name} AS int8 CACHE 1 NO CYCLE;
             CREATE TABLE IF NOT EXISTS {locks} (
                 key bytea PRIMARY KEY,
                 name bytea,
                 owner text,
                 expires_at timestamptz NOT NULL,
                 fence int8 NOT NULL,
                 released_by text
             );
             CREATE INDEX IF NOT EXISTS {locks_exp} ON {locks} (expires_at);
             CREATE TABLE IF NOT EXISTS {sems} (
                 key bytea PRIMARY KEY,
                 name bytea,
                 permits int4 NOT NULL,
                 owners text[] NOT NULL,
                 expiries timestamptz[] NOT NULL,
                 fences int8[] NOT NULL,
                 expires_at timestamptz NOT NULL
             );
             CREATE INDEX IF NOT EXISTS {sems_exp} ON {sems} (expires_at);
             CREATE TABLE IF NOT EXISTS {tickets} (
                 key bytea PRIMARY KEY,
                 name bytea,
                 owners text[] NOT NULL,
                 seqs int8[] NOT NULL,
                 expiries timestamptz[] NOT NULL,
                 expires_at timestamptz NOT NULL
             );
             CREATE INDEX IF NOT EXISTS {tickets_exp} ON {tickets} (expires_at);
             {rw_tables}",
            lit = literal(&format!("{schema}.{table}")),
            schema_id = ident(schema),
            locks_exp = ident(&format!("{table}_expires_at")),
            sems_exp = ident(&format!("{table}_semaphores_expires_at")),
            tickets_exp = ident(&format!("{table}_tickets_expires_at")),
            rw_tables = rw::tables(&rws, &ident(&format!("{table}_rwlocks_expires_at"))),
        );
        // The first live ticket of `$1`'s line, for the wake-up payload.
        let head = format!(
            "left(coalesce((SELECT u.o FROM {tickets} t, unnest(t.owners, t.seqs, t.expiries)
                                AS u(o, s, e)
                        WHERE t.key = $1 AND u.e > {now} ORDER BY u.s LIMIT 1), ''), 4000)"
        );
        // A fair claim: `INSERT ... ON CONFLICT DO UPDATE` when `fair` (a
        // condition on the line) holds, for a new row and a taken-over one.
        // Only the head of the line is woken to claim, so it rarely loses
        // (and then locks the row, unlike a plain claim). A fair claim sent
        // again after a lost answer finds the lock its own (and its ticket
        // gone): it wins again, line or not.
        let claim_body = |fair: &str| {
            format!(
                "INSERT INTO {locks} AS l (key, name, owner, expires_at, fence)
                 SELECT $1::bytea, $4::bytea, $2::text, {until}, nextval({seq})
                 WHERE ({fair} OR EXISTS (SELECT 1 FROM {locks}
                                         WHERE key = $1 AND owner = $2 AND expires_at > {now}))
                 ON CONFLICT (key) DO UPDATE SET
                     fence = CASE WHEN l.owner = $2 AND l.expires_at > {now}
                                  THEN l.fence ELSE nextval({seq}) END,
                     owner = $2,
                     expires_at = {until}
                 WHERE (l.owner IS NULL OR l.expires_at <= {now} OR l.owner = $2)
                   AND ({fair} OR (l.owner = $2 AND l.expires_at > {now}))
                 RETURNING fence, {exp}"
            )
        };
        // No live ticket of another owner ahead of `$2`'s (or none at all).
        let first_in_line = format!(
            "coalesce((SELECT u.o = $2::text FROM {tickets} t,
                           unnest(t.owners, t.seqs, t.expiries) AS u(o, s, e)
                       WHERE t.key = $1 AND u.e > {now} ORDER BY u.s LIMIT 1), true)"
        );
        // The live tickets of row `t`, as (o, s, e).
        let live_tickets = format!(
            "SELECT o, s, e FROM unnest(t.owners, t.seqs, t.expiries) AS u(o, s, e)
             WHERE e > {now}"
        );
        let permits = permits::PermitStatements::new(&sems, &seq, &chan);
        Statements {
            schema: schema_sql,
            // A plain UPDATE of a taken row skips it without locking it
            // (READ COMMITTED re-checks the condition on the newest version
            // after waiting for a concurrent writer), and an INSERT that
            // meets an existing key does nothing: a losing claim takes no
            // row lock, writes no WAL and needs no commit flush, so the
            // waiters a release wakes in other processes neither queue
            // behind each other nor delay the winner's release. (`INSERT
            // ... ON CONFLICT DO UPDATE ... WHERE` locks the row before it
            // evaluates the condition, so each loser wrote and flushed.)
            claim: format!(
                "WITH updated AS (
                     UPDATE {locks} AS l SET
                         fence = CASE WHEN l.owner = $2 AND l.expires_at > {now}
                                      THEN l.fence ELSE nextval({seq}) END,
                         owner = $2,
                         expires_at = {until}
                     WHERE l.key = $1
                       AND (l.owner IS NULL OR l.expires_at <= {now} OR l.owner = $2)
                     RETURNING l.fence, {exp}
                 ),
                 inserted AS (
                     INSERT INTO {locks} (key, name, owner, expires_at, fence)
                     SELECT $1::bytea, $4::bytea, $2::text, {until}, nextval({seq})
                     WHERE NOT EXISTS (SELECT 1 FROM updated)
                     ON CONFLICT (key) DO NOTHING
                     RETURNING fence, {exp}
                 )
                 SELECT * FROM updated UNION ALL SELECT * FROM inserted"
            ),
            extend: format!(
                "UPDATE {locks} SET expires_at = {until}
                 WHERE key = $1 AND owner = $2 AND expires_at > {now}
                 RETURNING {exp}"
            ),
            release: format!(
                "WITH released AS (
                     UPDATE {locks} SET owner = NULL, released_by = $3,
                                        expires_at = least(expires_at, {now})
                     WHERE key = $1
                       AND (owner = $2 OR (owner IS NULL AND released_by = $3))
                     RETURNING key
                 ), swept AS ({sweep_locks}), swept_tickets AS ({sweep_tickets})
                 SELECT count(*) FROM (
                     SELECT pg_notify({chan}, 'l ' || encode(r.key, 'hex') || ' ' || {head})
                     FROM released r) AS n",
                sweep_locks = sweep(&locks),
                sweep_tickets = sweep(&tickets),
            ),
            inspect: format!(
                "SELECT owner, {exp}, fence FROM {locks}
                 WHERE key = $1 AND owner IS NOT NULL AND expires_at > {now}"
            ),
            // Short names are their own keys (ordered like the names);
            // long names' keys start with 0xFF, which no UTF-8 name does,
            // so they sort after every short one and are listed by their
            // stored names.
            list: format!(
                "SELECT n, owner, e, fence FROM (
                     (SELECT key AS n, owner, {exp} AS e, fence FROM {locks}
                      WHERE key >= $1 AND key < coalesce($2, '\\xff'::bytea)
                        AND ($3::bytea IS NULL OR key > $3)
                        AND owner IS NOT NULL AND expires_at > {now}
                      ORDER BY key LIMIT $4)
                     UNION ALL
                     (SELECT name AS n, owner, {exp} AS e, fence FROM {locks}
                      WHERE key >= '\\xff'::bytea AND name >= $1
                        AND ($2::bytea IS NULL OR name < $2)
                        AND ($3::bytea IS NULL OR name > $3)
                        AND owner IS NOT NULL AND expires_at > {now}
                      ORDER BY name LIMIT $4)
                 ) AS page ORDER BY n LIMIT $4"
            ),
            force_release: format!(
                "WITH removed AS (
                     UPDATE {locks} SET owner = NULL, expires_at = {now}
                     WHERE key = $1 AND owner IS NOT NULL AND expires_at > {now}
                     RETURNING key
                 )
                 SELECT count(*) FROM (
                     SELECT pg_notify({chan}, 'l ' || encode(r.key, 'hex') || ' ' || {head})
                     FROM removed r) AS n"
            ),
            claim_permit: permits.claim,
            extend_permit: permits.extend,
            release_permit: permits.release,
            inspect_semaphore: permits.inspect,
            list_semaphores: permits.list,
            list_queues: format!(
                "SELECT n, waiting FROM (
                     SELECT coalesce(t.name, t.key) AS n,
                            (SELECT count(*) FROM unnest(t.expiries) AS x(e) WHERE e > {now})
                                AS waiting
                     FROM {tickets} t
                     WHERE coalesce(t.name, t.key) >= $1
                       AND ($2::bytea IS NULL OR coalesce(t.name, t.key) < $2)
                 ) AS lines WHERE waiting > 0 ORDER BY n LIMIT $3"
            ),
            // The lock's live holder gets no ticket (no row: the answer
            // 0); a new owner of a full line none either (the answer -1).
            enqueue: format!(
                "INSERT INTO {tickets} AS t (key, name, owners, seqs, expiries, expires_at)
                 SELECT $1, $4::bytea, ARRAY[$2::text], ARRAY[nextval({seq})], ARRAY[{until}],
                        {until}
                 WHERE NOT EXISTS (SELECT 1 FROM {locks}
                                   WHERE key = $1 AND owner = $2 AND expires_at > {now})
                 ON CONFLICT (key) DO UPDATE SET
                     (owners, seqs, expiries) = (
                         SELECT coalesce(array_agg(o ORDER BY s), '{{}}'),
                                coalesce(array_agg(s ORDER BY s), '{{}}'),
                                coalesce(array_agg(e ORDER BY s), '{{}}')
                         FROM (SELECT o, s, CASE WHEN o = $2 THEN {until} ELSE e END AS e
                               FROM ({live_tickets}) AS kept
                               UNION ALL
                               SELECT $2, nextval({seq}), {until}
                               WHERE NOT EXISTS (SELECT 1 FROM ({live_tickets}) AS m
                                                 WHERE m.o = $2)
                                 AND (SELECT count(*) FROM ({live_tickets}) AS c)
                                     < {MAX_WAITERS}) AS n),
                     expires_at = greatest(t.expires_at, {until})
                 RETURNING coalesce(array_position(t.owners, $2::text) - 1, -1)::int8"
            ),
            claim_fair: format!(
                "WITH won AS ({claim}),
                 left_line AS (
                     UPDATE {tickets} AS t SET
                         (owners, seqs, expiries) = (
                             SELECT coalesce(array_agg(o ORDER BY s), '{{}}'),
                                    coalesce(array_agg(s ORDER BY s), '{{}}'),
                                    coalesce(array_agg(e ORDER BY s), '{{}}')
                             FROM ({live_tickets}) AS kept WHERE o <> $2)
                     WHERE t.key = $1 AND $2 = ANY (t.owners) AND EXISTS (SELECT 1 FROM won)
                 )
                 SELECT * FROM won",
                claim = claim_body(&first_in_line),
            ),
            extend_ticket: format!(
                "UPDATE {tickets} AS t SET
                     expiries = (SELECT array_agg(CASE WHEN o = $2 THEN {until} ELSE e END
                                                  ORDER BY ord)
                                 FROM unnest(t.owners, t.expiries) WITH ORDINALITY
                                      AS u(o, e, ord)),
                     expires_at = greatest(t.expires_at, {until})
                 WHERE t.key = $1
                   AND EXISTS (SELECT 1 FROM ({live_tickets}) AS m WHERE m.o = $2)
                 RETURNING 1"
            ),
            // Leaving a free lock's line wakes the next in line, in
            // whichever process it waits (the notification names it).
            leave_queue: format!(
                "WITH removed AS (
                     UPDATE {tickets} AS t SET
                         (owners, seqs, expiries) = (
                             SELECT coalesce(array_agg(o ORDER BY s), '{{}}'),
                                    coalesce(array_agg(s ORDER BY s), '{{}}'),
                                    coalesce(array_agg(e ORDER BY s), '{{}}')
                             FROM unnest(t.owners, t.seqs, t.expiries) AS u(o, s, e)
                             WHERE o <> $2)
                     WHERE t.key = $1 AND $2 = ANY (t.owners)
                     RETURNING t.key, t.owners, t.seqs, t.expiries
                 )
                 SELECT count(*) FROM removed r LEFT JOIN LATERAL (
                     SELECT pg_notify({chan}, 'l ' || encode(r.key, 'hex') || ' ' || left(
                         coalesce((SELECT u.o FROM unnest(r.owners, r.seqs, r.expiries)
                                       AS u(o, s, e)
                                   WHERE u.e > {now} ORDER BY u.s LIMIT 1), ''), 4000))
                     WHERE NOT EXISTS (SELECT 1 FROM {locks}
                                       WHERE key = $1 AND owner IS NOT NULL
                                         AND expires_at > {now})
                 ) AS woken ON true"
            ),
            rw: RwStatements::new(&rws, &seq, &chan),
            channel: channel.to_owned(),
        }
    }
}
