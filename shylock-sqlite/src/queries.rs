//! Every statement the backend sends; public with the `bench` feature so
//! the benchmark can replay the same database work without the library.
//! Not a stable API.
//!
//! Times are whole milliseconds, truncated, so a lease stored as
//! `now + ttl` expires only once the clock is strictly past it: it never
//! ends before a full ttl after the request.
//!
//! A row holds a live lease only when its owner is text and its expiry an
//! integer: a row another program wrote with other types (SQLite keeps
//! whatever type it is given) counts as free and is taken over cleanly.

/// Creates the tables: locks, semaphores with their permits, the lines of
/// fair waiters, and read/write locks with their holders.
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS shylock_locks (
         name BLOB PRIMARY KEY NOT NULL,
         owner TEXT,
         expires_at_ms INTEGER NOT NULL,
         fence INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS shylock_semaphores (
         name BLOB PRIMARY KEY NOT NULL,
         permits INTEGER NOT NULL,
         fence INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS shylock_permits (
         name BLOB NOT NULL,
         owner TEXT NOT NULL,
         expires_at_ms INTEGER NOT NULL,
         fence INTEGER NOT NULL,
         PRIMARY KEY (name, owner)
     ) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS shylock_tickets (
         name BLOB NOT NULL,
         owner TEXT NOT NULL,
         seq INTEGER NOT NULL,
         expires_at_ms INTEGER NOT NULL,
         PRIMARY KEY (name, owner)
     ) WITHOUT ROWID;
     CREATE INDEX IF NOT EXISTS shylock_tickets_order ON shylock_tickets (name, seq);
     CREATE TABLE IF NOT EXISTS shylock_rwlocks (
         name BLOB PRIMARY KEY NOT NULL,
         fence INTEGER NOT NULL,
         intent_owner TEXT,
         intent_until_ms INTEGER
     ) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS shylock_rw_holders (
         name BLOB NOT NULL,
         owner TEXT NOT NULL,
         writer INTEGER NOT NULL,
         expires_at_ms INTEGER NOT NULL,
         fence INTEGER NOT NULL,
         PRIMARY KEY (name, owner)
     ) WITHOUT ROWID;";

/// Takes the lock if free, expired or ours (?1 name, ?2 owner, ?3 new
/// expiry ms, ?4 now ms); returns the fence when taken. A retry by the
/// owner keeps its fence; every new holder gets fence + 1.
pub const ACQUIRE: &str = "INSERT INTO shylock_locks (name, owner, expires_at_ms, fence)
     VALUES (?1, ?2, ?3, 1)
     ON CONFLICT (name) DO UPDATE SET
         fence = CASE WHEN owner = ?2 AND typeof(expires_at_ms) = 'integer'
                           AND expires_at_ms >= ?4
                      THEN fence ELSE CAST(fence AS INTEGER) + 1 END,
         owner = ?2,
         expires_at_ms = ?3
     WHERE typeof(owner) <> 'text' OR typeof(expires_at_ms) <> 'integer'
        OR expires_at_ms < ?4 OR owner = ?2
     RETURNING fence";

/// Pushes the expiry (?3) if ?2 still holds a live lease (?4 now).
pub const EXTEND: &str = "UPDATE shylock_locks SET expires_at_ms = ?3
     WHERE name = ?1 AND owner = ?2 AND typeof(expires_at_ms) = 'integer'
       AND expires_at_ms >= ?4
     RETURNING fence";

/// Frees the lock if ?2 owns it.
pub const RELEASE: &str = "UPDATE shylock_locks SET owner = NULL, expires_at_ms = 0
     WHERE name = ?1 AND owner = ?2";

/// The live holder of ?1 (?2 now).
pub const INSPECT: &str = "SELECT owner, expires_at_ms, CAST(fence AS INTEGER) FROM shylock_locks
     WHERE name = ?1 AND typeof(owner) = 'text' AND typeof(expires_at_ms) = 'integer'
       AND expires_at_ms >= ?2";

/// Whether ?1 has a live holder (?2 now).
pub const IS_LIVE: &str = "SELECT 1 FROM shylock_locks
     WHERE name = ?1 AND typeof(owner) = 'text' AND typeof(expires_at_ms) = 'integer'
       AND expires_at_ms >= ?2";

/// Whether ?2 holds a live lease on ?1 (?3 now).
pub const HOLDS_LIVE: &str = "SELECT 1 FROM shylock_locks
     WHERE name = ?1 AND owner = ?2 AND typeof(expires_at_ms) = 'integer'
       AND expires_at_ms >= ?3";

/// Frees ?1 whoever holds it.
pub const FORCE_RELEASE: &str =
    "UPDATE shylock_locks SET owner = NULL, expires_at_ms = 0 WHERE name = ?1";

/// One page of live holders: names from ?1 (the prefix, inclusive) below
/// ?2 (its upper bound, or NULL for none), after ?3 (exclusive, or NULL),
/// live at ?4, at most ?5 rows, in byte order (BLOBs compare with memcmp).
pub const LIST: &str = "SELECT name, owner, expires_at_ms, CAST(fence AS INTEGER)
     FROM shylock_locks
     WHERE name >= ?1 AND (?2 IS NULL OR name < ?2) AND (?3 IS NULL OR name > ?3)
       AND typeof(name) = 'blob' AND typeof(owner) = 'text'
       AND typeof(expires_at_ms) = 'integer' AND expires_at_ms >= ?4
     ORDER BY name LIMIT ?5";

/// Semaphores, the read before a claim: live permits of ?1 at ?3, the
/// stored permit count, and whether ?2 holds one of them. A full semaphore
/// (or one with another count) is answered from this read alone, so
/// waiters that cannot win take no write transaction.
pub const PERMITS_READ: &str = "SELECT
     (SELECT count(*) FROM shylock_permits WHERE name = ?1
        AND typeof(expires_at_ms) = 'integer' AND expires_at_ms >= ?3),
     (SELECT CAST(permits AS INTEGER) FROM shylock_semaphores WHERE name = ?1),
     EXISTS (SELECT 1 FROM shylock_permits WHERE name = ?1 AND owner = ?2
        AND typeof(expires_at_ms) = 'integer' AND expires_at_ms >= ?3)";

/// Semaphores, step 1 of a claim: drops permits of ?1 that are not live at
/// ?2 (expired, or not an integer expiry).
pub const PERMITS_SWEEP: &str = "DELETE FROM shylock_permits
     WHERE name = ?1 AND NOT (typeof(expires_at_ms) = 'integer' AND expires_at_ms >= ?2)";

/// Semaphores: pushes the expiry (?3) of ?2's permit of ?1 if live at ?4;
/// returns its fence. Also step 2 of a claim (a retry by the holder).
pub const PERMIT_EXTEND: &str = "UPDATE shylock_permits SET expires_at_ms = ?3
     WHERE name = ?1 AND owner = ?2 AND typeof(expires_at_ms) = 'integer'
       AND expires_at_ms >= ?4
     RETURNING CAST(fence AS INTEGER)";

/// Semaphores, step 3 of a claim: live permits of ?1 (after the sweep),
/// the stored permit count and the last fence.
pub const SEMAPHORE_STATE: &str = "SELECT
     (SELECT count(*) FROM shylock_permits WHERE name = ?1),
     (SELECT CAST(permits AS INTEGER) FROM shylock_semaphores WHERE name = ?1),
     (SELECT CAST(fence AS INTEGER) FROM shylock_semaphores WHERE name = ?1)";

/// Semaphores, step 4 of a claim: records the count ?2 and the new fence
/// ?3 of ?1.
pub const SEMAPHORE_UPSERT: &str = "INSERT INTO shylock_semaphores (name, permits, fence)
     VALUES (?1, ?2, ?3)
     ON CONFLICT (name) DO UPDATE SET permits = ?2, fence = ?3";

/// Semaphores, step 5 of a claim: the permit of ?2 on ?1 until ?3, fence ?4.
pub const PERMIT_INSERT: &str = "INSERT INTO shylock_permits (name, owner, expires_at_ms, fence)
     VALUES (?1, ?2, ?3, ?4)";

/// Semaphores: frees ?2's permit of ?1.
pub const PERMIT_RELEASE: &str = "DELETE FROM shylock_permits WHERE name = ?1 AND owner = ?2";

/// Semaphores: live permits of ?1 at ?2, in fence order, and the stored count.
pub const PERMITS_LIVE: &str = "SELECT p.owner, p.expires_at_ms, CAST(p.fence AS INTEGER),
         CAST(s.permits AS INTEGER)
     FROM shylock_permits p LEFT JOIN shylock_semaphores s ON s.name = p.name
     WHERE p.name = ?1 AND typeof(p.owner) = 'text'
       AND typeof(p.expires_at_ms) = 'integer' AND p.expires_at_ms >= ?2
     ORDER BY p.fence";

/// Semaphores: the live permits, in name then fence order, of the first ?4
/// semaphores with live permits whose names are from ?1 (the prefix,
/// inclusive) below ?2 (its upper bound, or NULL), live at ?3; with each
/// the stored count.
pub const SEMAPHORES_LIST: &str = "SELECT p.name, p.owner, p.expires_at_ms,
         CAST(p.fence AS INTEGER), CAST(s.permits AS INTEGER)
     FROM shylock_permits p LEFT JOIN shylock_semaphores s ON s.name = p.name
     WHERE typeof(p.owner) = 'text'
       AND typeof(p.expires_at_ms) = 'integer' AND p.expires_at_ms >= ?3
       AND p.name IN (SELECT DISTINCT name FROM shylock_permits
           WHERE name >= ?1 AND (?2 IS NULL OR name < ?2) AND typeof(name) = 'blob'
             AND typeof(expires_at_ms) = 'integer' AND expires_at_ms >= ?3
           ORDER BY name LIMIT ?4)
     ORDER BY p.name, p.fence";

/// Fair queues: the first ?4 lines with live tickets at ?3 whose names are
/// from ?1 (inclusive) below ?2 (or NULL), with their live ticket counts.
pub const QUEUES_LIST: &str = "SELECT name, count(*) FROM shylock_tickets
     WHERE name >= ?1 AND (?2 IS NULL OR name < ?2) AND typeof(name) = 'blob'
       AND typeof(expires_at_ms) = 'integer' AND expires_at_ms >= ?3
     GROUP BY name ORDER BY name LIMIT ?4";

/// Fair queues: drops tickets of ?1 that are not live at ?2.
pub const TICKETS_SWEEP: &str = "DELETE FROM shylock_tickets
     WHERE name = ?1 AND NOT (typeof(expires_at_ms) = 'integer' AND expires_at_ms >= ?2)";

/// Fair queues: pushes the expiry (?3) of ?2's ticket for ?1 if live at ?4;
/// returns its place in the arrival order.
pub const TICKET_EXTEND: &str = "UPDATE shylock_tickets SET expires_at_ms = ?3
     WHERE name = ?1 AND owner = ?2 AND typeof(expires_at_ms) = 'integer'
       AND expires_at_ms >= ?4
     RETURNING CAST(seq AS INTEGER)";

/// Fair queues: a ticket for ?2 at the end of the line of ?1, until ?3;
/// returns its place in the arrival order.
pub const TICKET_INSERT: &str = "INSERT INTO shylock_tickets (name, owner, seq, expires_at_ms)
     VALUES (?1, ?2,
         (SELECT coalesce(max(CAST(seq AS INTEGER)), 0) + 1 FROM shylock_tickets WHERE name = ?1),
         ?3)
     RETURNING CAST(seq AS INTEGER)";

/// Fair queues: how many tickets ?1 has (after the sweep: all live).
pub const TICKETS_COUNT: &str = "SELECT count(*) FROM shylock_tickets WHERE name = ?1";

/// Fair queues: how many tickets of ?1 are ahead of arrival ?2.
pub const TICKETS_AHEAD: &str =
    "SELECT count(*) FROM shylock_tickets WHERE name = ?1 AND CAST(seq AS INTEGER) < ?2";

/// Fair queues: the owner of the first ticket of ?1 live at ?2.
pub const QUEUE_HEAD: &str = "SELECT owner FROM shylock_tickets
     WHERE name = ?1 AND typeof(expires_at_ms) = 'integer' AND expires_at_ms >= ?2
     ORDER BY CAST(seq AS INTEGER) LIMIT 1";

/// Fair queues: removes ?2's ticket for ?1.
pub const TICKET_LEAVE: &str = "DELETE FROM shylock_tickets WHERE name = ?1 AND owner = ?2";

/// Read/write locks: drops the holders of ?1 that are not live at ?2.
pub const RW_SWEEP: &str = "DELETE FROM shylock_rw_holders
     WHERE name = ?1 AND NOT (typeof(expires_at_ms) = 'integer' AND expires_at_ms >= ?2)";

/// Read/write locks: pushes the expiry (?3) of ?2's lease on ?1 if live at
/// ?4 and on the side ?5 (0 reader, 1 writer, NULL either); returns its
/// fence.
pub const RW_EXTEND: &str = "UPDATE shylock_rw_holders SET expires_at_ms = ?3
     WHERE name = ?1 AND owner = ?2 AND typeof(expires_at_ms) = 'integer'
       AND expires_at_ms >= ?4 AND (?5 IS NULL OR writer = ?5)
     RETURNING CAST(fence AS INTEGER)";

/// Read/write locks, after the sweep: live readers and writers of ?1, the
/// last fence, and whether a writer's intent is live at ?2.
pub const RW_STATE: &str = "SELECT
         (SELECT count(*) FROM shylock_rw_holders WHERE name = ?1 AND writer = 0),
         (SELECT count(*) FROM shylock_rw_holders WHERE name = ?1 AND writer = 1),
         (SELECT CAST(fence AS INTEGER) FROM shylock_rwlocks WHERE name = ?1),
         (SELECT intent_owner FROM shylock_rwlocks WHERE name = ?1
             AND typeof(intent_until_ms) = 'integer' AND intent_until_ms >= ?2)";

/// Read/write locks: stores the last fence ?2 of ?1, and clears the
/// intent if it was ?3's (the new writer).
pub const RW_FENCE: &str = "INSERT INTO shylock_rwlocks (name, fence) VALUES (?1, ?2)
     ON CONFLICT (name) DO UPDATE SET fence = ?2,
         intent_owner = CASE WHEN intent_owner = ?3 THEN NULL ELSE intent_owner END,
         intent_until_ms = CASE WHEN intent_owner = ?3 THEN NULL ELSE intent_until_ms END";

/// Read/write locks: a lease of ?1 for ?2 (writer ?3) until ?4 with fence ?5.
pub const RW_INSERT: &str =
    "INSERT INTO shylock_rw_holders (name, owner, writer, expires_at_ms, fence)
     VALUES (?1, ?2, ?3, ?4, ?5)";

/// Read/write locks: records ?2's intent to write on ?1 until ?3 unless
/// another owner's intent is live at ?4; its own live intent only once
/// half of it has run (a waiting writer that retries often writes seldom).
pub const RW_INTENT: &str =
    "INSERT INTO shylock_rwlocks (name, fence, intent_owner, intent_until_ms)
     VALUES (?1, 0, ?2, ?3)
     ON CONFLICT (name) DO UPDATE SET intent_owner = ?2, intent_until_ms = ?3
     WHERE intent_owner IS NULL
        OR NOT (typeof(intent_until_ms) = 'integer' AND intent_until_ms >= ?4)
        OR (intent_owner = ?2 AND 2 * intent_until_ms < ?3 + ?4)";

/// Read/write locks: removes ?2's lease on ?1; returns whether it was the
/// writer.
pub const RW_RELEASE: &str =
    "DELETE FROM shylock_rw_holders WHERE name = ?1 AND owner = ?2 RETURNING writer";

/// Read/write locks: withdraws ?2's intent to write on ?1.
pub const RW_WITHDRAW: &str =
    "UPDATE shylock_rwlocks SET intent_owner = NULL, intent_until_ms = NULL
     WHERE name = ?1 AND intent_owner = ?2";

/// Read/write locks: the holders of ?1 live at ?2, in grant order.
pub const RW_LIVE: &str = "SELECT owner, writer, expires_at_ms, CAST(fence AS INTEGER)
     FROM shylock_rw_holders
     WHERE name = ?1 AND typeof(expires_at_ms) = 'integer' AND expires_at_ms >= ?2
     ORDER BY fence";
