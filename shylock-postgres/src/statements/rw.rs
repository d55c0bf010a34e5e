//! The statements of read/write locks: one row per name in
//! `<table>_rwlocks`, its leases as four parallel arrays (owner, whether
//! it writes, expiry, fence) and the one waiting writer's intent (owner
//! and until when), like a semaphore's row.
//!
//! A claim is one statement: an `UPDATE` of the name's row, else (no row
//! taken) an `INSERT … ON CONFLICT DO NOTHING` of a new one. A row that a
//! concurrent statement changes is waited for and judged again on its
//! newest version (READ COMMITTED), so no two claims decide on the same
//! state, and a row the `WHERE` refuses is skipped without a lock, so a
//! refused reader writes nothing. The `WHERE` lets through only claims
//! that change something (a grant, a retry by the holder, a refused writer
//! recording its intent); its `SET` decides again at one instant of the
//! server's clock, which is later than the `WHERE`'s: leases only expire
//! and intents only lapse as time passes, so what the `WHERE` let through
//! is still allowed, and what changed in between (a lease that expired) is
//! judged as it is then. Fences come from the backend's one sequence,
//! drawn by the statement that takes the row (and drawn again when it is
//! judged again on a newer version), so they increase per name across
//! read and write grants.

use super::{ms, sweep};

/// The SQL of read/write locks, built from the backend's names.
#[derive(Debug, Clone)]
pub struct RwStatements {
    /// `$2` owner, `$3` ttl ms, `$4` the full name when the key is a
    /// digest (else NULL), `$5` writers first (1) or not (0); one row
    /// (fence, expiry ms) when `$2` holds a read lease afterwards.
    pub claim_read: String,
    /// `$2` owner, `$3` ttl ms, `$4` full name or NULL, `$5` record the
    /// intent when refused (1) or not (0); one row (fence, expiry ms) when
    /// `$2` holds the write lease afterwards. A grant clears `$2`'s intent.
    pub claim_write: String,
    /// `$2` owner, `$3` ttl ms; one row (expiry ms) when `$2` held a live
    /// lease, read or write.
    pub extend: String,
    /// `$2` owner; one row (held a live lease, readers may enter now, a
    /// writer may win now) when `$2` held a lease or an intent, which are
    /// removed. Notifies the channel (`r KEY` for the readers, `w KEY` for
    /// a writer) and sweeps a few rows that ended long ago.
    pub release: String,
    /// Rows (owner, expiry ms, fence, writes, a writer waits) of the live
    /// leases in fence order; one row with a NULL owner when none is live
    /// but the row exists.
    pub inspect: String,
}

/// The table of read/write locks `rws` and its index `rws_exp`, for the
/// schema statement.
pub(super) fn tables(rws: &str, rws_exp: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {rws} (
             key bytea PRIMARY KEY,
             name bytea,
             owners text[] NOT NULL,
             writes bool[] NOT NULL,
             expiries timestamptz[] NOT NULL,
             fences int8[] NOT NULL,
             intent text,
             intent_until timestamptz,
             expires_at timestamptz NOT NULL
         );
         CREATE INDEX IF NOT EXISTS {rws_exp} ON {rws} (expires_at);"
    )
}

/// The leases of row `r` live at `at`, as (o, w, e, f).
fn live(at: &str) -> String {
    format!(
        "SELECT o, w, e, f FROM unnest(r.owners, r.writes, r.expiries, r.fences)
             AS u(o, w, e, f) WHERE e > {at}"
    )
}

/// The claim of a read (`write` false) or the write lease, on table `rws`
/// with fences from sequence `seq` (a literal).
fn claim(rws: &str, seq: &str, write: bool) -> String {
    let side = if write { "true" } else { "false" };
    // Judged at `at`: `$2` holds a live lease on this side (a retry, which
    // keeps it); `$2` may take a new one; `$2` may record its intent.
    let mine = |at: &str| {
        format!(
            "EXISTS (SELECT 1 FROM ({}) AS m WHERE m.o = $2 AND m.w = {side})",
            live(at)
        )
    };
    let take = |at: &str| {
        if write {
            format!("NOT EXISTS ({})", live(at))
        } else {
            format!(
                "NOT {mine} AND NOT EXISTS (SELECT 1 FROM ({live}) AS h WHERE h.w)
                 AND NOT ($5::int8 <> 0 AND r.intent IS NOT NULL AND r.intent_until > {at})",
                mine = mine(at),
                live = live(at)
            )
        }
    };
    let may_record = |at: &str| {
        if write {
            format!(
                "$5::int8 <> 0 AND (r.intent IS NULL OR r.intent = $2 OR r.intent_until <= {at})"
            )
        } else {
            "false".to_owned()
        }
    };
    let now = "clock_timestamp()";
    let wanted = format!(
        "({}) OR ({}) OR ({})",
        mine(now),
        take(now),
        may_record(now)
    );
    // A writer's grant clears its own intent; a refused writer records its
    // intent when no other owner's is live; a reader leaves it alone.
    let (intent, intent_until) = if write {
        (
            "CASE WHEN s.mine OR s.take THEN nullif(r.intent, $2::text)
                  WHEN s.may_record THEN $2::text ELSE r.intent END",
            "CASE WHEN (s.mine OR s.take) AND r.intent = $2 THEN NULL
                  WHEN NOT (s.mine OR s.take) AND s.may_record THEN s.until
                  ELSE r.intent_until END",
        )
    } else {
        ("r.intent", "r.intent_until")
    };
    let at = "c.now";
    // An UPDATE skips a row its `WHERE` refuses without locking it (and a
    // row a concurrent statement changes is judged again on its newest
    // version); only when no row was taken, an INSERT of a new row, which
    // does nothing on a conflict: a refused reader locks and writes
    // nothing. (A refused writer's update records its intent.)
    format!(
        "WITH updated AS (
             UPDATE {rws} AS r SET
                 (owners, writes, expiries, fences, intent, intent_until, expires_at) = (
                     SELECT n.owners, n.writes, n.expiries, n.fences, {intent}, {intent_until},
                            greatest(r.expires_at, s.until)
                     FROM (SELECT clock_timestamp() AS now) AS c
                     CROSS JOIN LATERAL (
                         SELECT c.now + $3::int8 * interval '1 millisecond' AS until,
                                ({mine}) AS mine, ({take}) AS take,
                                ({may_record}) AS may_record
                     ) AS s
                     CROSS JOIN LATERAL (
                         SELECT coalesce(array_agg(o ORDER BY f), '{{}}') AS owners,
                                coalesce(array_agg(w ORDER BY f), '{{}}') AS writes,
                                coalesce(array_agg(e ORDER BY f), '{{}}') AS expiries,
                                coalesce(array_agg(f ORDER BY f), '{{}}') AS fences
                         FROM (SELECT o, w, CASE WHEN o = $2 AND w = {side} THEN s.until
                                                 ELSE e END AS e, f
                               FROM ({live}) AS kept
                               UNION ALL
                               SELECT $2::text, {side}, s.until, nextval({seq}) WHERE s.take)
                              AS x
                     ) AS n
                 )
             WHERE r.key = $1 AND ({wanted})
             RETURNING r.fences[array_position(r.owners, $2::text)] AS fence,
                       {expires} AS expires,
                       r.writes[array_position(r.owners, $2::text)] AS w
         ),
         inserted AS (
             INSERT INTO {rws} AS r (key, name, owners, writes, expiries, fences, expires_at)
             SELECT $1::bytea, $4::bytea, ARRAY[$2::text], ARRAY[{side}], ARRAY[fresh.until],
                    ARRAY[nextval({seq})], fresh.until
             FROM (SELECT clock_timestamp() + $3::int8 * interval '1 millisecond' AS until)
                  AS fresh
             WHERE NOT EXISTS (SELECT 1 FROM updated)
             ON CONFLICT (key) DO NOTHING
             RETURNING r.fences[1] AS fence, {expires_new} AS expires, {side} AS w
         )
         SELECT fence, expires FROM updated WHERE w = {side}
         UNION ALL
         SELECT fence, expires FROM inserted",
        mine = mine(at),
        take = take(at),
        may_record = may_record(at),
        live = live(at),
        expires = ms("r.expiries[array_position(r.owners, $2::text)]"),
        expires_new = ms("r.expiries[1]"),
    )
}

impl RwStatements {
    /// The statements on table `rws` (quoted), with fences from sequence
    /// `seq` and notifications on channel `chan` (both as literals).
    pub(super) fn new(rws: &str, seq: &str, chan: &str) -> Self {
        let now = "clock_timestamp()";
        let until = "clock_timestamp() + $3::int8 * interval '1 millisecond'";
        let live_now = live(now);
        RwStatements {
            claim_read: claim(rws, seq, false),
            claim_write: claim(rws, seq, true),
            extend: format!(
                "UPDATE {rws} AS r SET
                     expiries = (SELECT array_agg(CASE WHEN o = $2 THEN {until} ELSE e END
                                                  ORDER BY ord)
                                 FROM unnest(r.owners, r.expiries) WITH ORDINALITY
                                      AS u(o, e, ord)),
                     expires_at = greatest(r.expires_at, {until})
                 WHERE r.key = $1
                   AND EXISTS (SELECT 1 FROM ({live_now}) AS m WHERE m.o = $2)
                 RETURNING {}",
                ms("r.expiries[array_position(r.owners, $2::text)]")
            ),
            // `held` locks the row and reads it before the update, which
            // then works on the version it locked: what the owner held and
            // what is left decide whom the notifications wake.
            release: format!(
                "WITH held AS (
                     SELECT r.key,
                            EXISTS (SELECT 1 FROM ({live_now}) AS h WHERE h.o = $2) AS lease,
                            EXISTS (SELECT 1 FROM ({live_now}) AS h WHERE h.o = $2 AND h.w)
                                AS wrote,
                            coalesce(r.intent = $2 AND r.intent_until > {now}, false)
                                AS withdrawn,
                            NOT EXISTS (SELECT 1 FROM ({live_now}) AS h WHERE h.o <> $2)
                                AS free
                     FROM {rws} r
                     WHERE r.key = $1 AND ($2 = ANY (r.owners) OR r.intent = $2)
                     FOR UPDATE
                 ), released AS (
                     UPDATE {rws} AS r SET
                         (owners, writes, expiries, fences) = (
                             SELECT coalesce(array_agg(o ORDER BY f), '{{}}'),
                                    coalesce(array_agg(w ORDER BY f), '{{}}'),
                                    coalesce(array_agg(e ORDER BY f), '{{}}'),
                                    coalesce(array_agg(f ORDER BY f), '{{}}')
                             FROM unnest(r.owners, r.writes, r.expiries, r.fences)
                                  AS u(o, w, e, f)
                             WHERE o <> $2),
                         intent = nullif(r.intent, $2::text),
                         intent_until = CASE WHEN r.intent = $2 THEN NULL
                                             ELSE r.intent_until END
                     FROM held
                     WHERE r.key = $1 AND r.key = held.key
                     RETURNING held.key, held.lease, held.wrote OR held.withdrawn AS readers,
                               (held.lease OR held.withdrawn) AND held.free AS writer
                 ), swept AS ({swept})
                 SELECT d.lease, d.readers, d.writer FROM released d
                 LEFT JOIN LATERAL (
                     SELECT pg_notify({chan}, 'r ' || encode(d.key, 'hex')) WHERE d.readers
                 ) AS woke_readers ON true
                 LEFT JOIN LATERAL (
                     SELECT pg_notify({chan}, 'w ' || encode(d.key, 'hex')) WHERE d.writer
                 ) AS woke_writer ON true",
                swept = sweep(rws),
            ),
            inspect: format!(
                "SELECT u.o, {}, u.f, u.w,
                        coalesce(r.intent IS NOT NULL AND r.intent_until > {now}, false)
                 FROM {rws} r LEFT JOIN LATERAL ({live_now}) AS u ON true
                 WHERE r.key = $1 ORDER BY u.f",
                ms("u.e")
            ),
        }
    }
}
