//! The statements of semaphores: one row per semaphore in
//! `<table>_semaphores`, its permit count and its live holders as three
//! parallel arrays (owner, expiry, fence).

use super::{ms, sweep};

/// The SQL of semaphores, built from the backend's names; the fields of
/// [`Statements`](super::Statements) of the same names document them.
pub(super) struct PermitStatements {
    pub(super) claim: String,
    pub(super) extend: String,
    pub(super) release: String,
    pub(super) inspect: String,
    pub(super) list: String,
}

impl PermitStatements {
    /// For the semaphores' table `sems`, the fence sequence `seq` (a
    /// literal) and the notification channel `chan` (a literal).
    pub(super) fn new(sems: &str, seq: &str, chan: &str) -> Self {
        let now = "clock_timestamp()";
        let until = "clock_timestamp() + $3::int8 * interval '1 millisecond'";
        // The live permits of row `s`, as (o, e, f).
        let live = format!(
            "SELECT o, e, f FROM unnest(s.owners, s.expiries, s.fences) AS u(o, e, f)
             WHERE e > {now}"
        );
        // As a lock's claim: an UPDATE that skips a full row without
        // locking it (READ COMMITTED re-checks the row's holders on its
        // newest version after waiting for a concurrent claim or release,
        // so the count stays exact), else an INSERT of a new row; a claim
        // that gets no permit writes nothing.
        let claim_permit = format!(
            "WITH updated AS (
                 UPDATE {sems} AS s SET
                     permits = CASE WHEN EXISTS ({live}) THEN s.permits ELSE $3 END,
                     (owners, expiries, fences) = (
                         SELECT array_agg(o ORDER BY f), array_agg(e ORDER BY f),
                                array_agg(f ORDER BY f)
                         FROM (SELECT o, CASE WHEN o = $2 THEN {until4} ELSE e END AS e, f
                               FROM ({live}) AS kept
                               UNION ALL
                               SELECT $2, {until4}, nextval({seq})
                               WHERE NOT EXISTS (SELECT 1 FROM ({live}) AS m WHERE m.o = $2))
                              AS n),
                     expires_at = greatest(s.expires_at, {until4})
                 WHERE s.key = $1
                   AND (EXISTS (SELECT 1 FROM ({live}) AS m WHERE m.o = $2)
                        OR ((SELECT count(*) FROM ({live}) AS c) < $3::int4
                            AND (s.permits = $3 OR NOT EXISTS ({live}))))
                 RETURNING s.fences[array_position(s.owners, $2::text)] AS fence,
                           {exp_until4} AS expires
             ),
             inserted AS (
                 INSERT INTO {sems} AS s (key, name, permits, owners, expiries, fences, expires_at)
                 SELECT $1::bytea, $5::bytea, $3::int4, ARRAY[$2::text], ARRAY[{until4}],
                        ARRAY[nextval({seq})], {until4}
                 WHERE NOT EXISTS (SELECT 1 FROM updated)
                 ON CONFLICT (key) DO NOTHING
                 RETURNING s.fences[1] AS fence, {exp_new} AS expires
             ),
             granted AS (SELECT * FROM updated UNION ALL SELECT * FROM inserted)
             SELECT true, fence, expires, NULL::int4, NULL::int8 FROM granted
             UNION ALL
             SELECT false, NULL::int8, NULL::int8, s.permits,
                    (SELECT count(*) FROM ({live}) AS c)
             FROM {sems} s WHERE s.key = $1 AND NOT EXISTS (SELECT 1 FROM granted)",
            until4 = "clock_timestamp() + $4::int8 * interval '1 millisecond'",
            exp_until4 = ms("s.expiries[array_position(s.owners, $2::text)]"),
            exp_new = ms("s.expiries[1]"),
        );
        let extend_permit = format!(
            "UPDATE {sems} AS s SET
                 expiries = (SELECT array_agg(CASE WHEN o = $2 THEN {until} ELSE e END
                                              ORDER BY ord)
                             FROM unnest(s.owners, s.expiries) WITH ORDINALITY AS u(o, e, ord)),
                 expires_at = greatest(s.expires_at, {until})
             WHERE s.key = $1 AND EXISTS (SELECT 1 FROM ({live}) AS m WHERE m.o = $2)
             RETURNING {}",
            ms("s.expiries[array_position(s.owners, $2::text)]")
        );
        let release_permit = format!(
            "WITH released AS (
                 UPDATE {sems} AS s SET
                     (owners, expiries, fences) = (
                         SELECT coalesce(array_agg(o ORDER BY f), '{{}}'),
                                coalesce(array_agg(e ORDER BY f), '{{}}'),
                                coalesce(array_agg(f ORDER BY f), '{{}}')
                         FROM unnest(s.owners, s.expiries, s.fences) AS u(o, e, f)
                         WHERE o <> $2)
                 WHERE s.key = $1 AND $2 = ANY (s.owners)
                 RETURNING s.key
             ), swept AS ({sweep_sems})
             SELECT count(*) FROM (
                 SELECT pg_notify({chan}, 'p ' || encode(r.key, 'hex')) FROM released r) AS n",
            sweep_sems = sweep(sems),
        );
        let inspect_semaphore = format!(
            "SELECT u.o, {}, u.f, s.permits
             FROM {sems} s, unnest(s.owners, s.expiries, s.fences) AS u(o, e, f)
             WHERE s.key = $1 AND u.e > {now} ORDER BY u.f",
            ms("u.e")
        );
        let list = format!(
            "WITH picked AS (
                     SELECT coalesce(s.name, s.key) AS n, s.permits, s.owners, s.expiries, s.fences
                     FROM {sems} s
                     WHERE coalesce(s.name, s.key) >= $1
                       AND ($2::bytea IS NULL OR coalesce(s.name, s.key) < $2)
                       AND EXISTS (SELECT 1 FROM unnest(s.expiries) AS x(e) WHERE e > {now})
                     ORDER BY n LIMIT $3
                 )
                 SELECT p.n, u.o, {}, u.f, p.permits
                 FROM picked p, unnest(p.owners, p.expiries, p.fences) AS u(o, e, f)
                 WHERE u.e > {now} ORDER BY p.n, u.f",
            ms("u.e")
        );
        PermitStatements {
            claim: claim_permit,
            extend: extend_permit,
            release: release_permit,
            inspect: inspect_semaphore,
            list,
        }
    }
}
