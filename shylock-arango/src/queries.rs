//! The AQL the backend sends, with bind variables only.
//!
//! `@@coll` is the collection, `@key` the document key
//! ([`document_key`](crate::document_key)), `@sortKey` the name's sort key
//! ([`sort_key`](crate::sort_key)), `@owner` the owner token, `@ttl` the
//! lease in ms. Public so tests (the fake server) and tools can match
//! the exact queries. `DATE_NOW()` is whole milliseconds, so a lease counts
//! as expired only when `expiresAtMs < now` (strictly): it never ends
//! before a full ttl after the request.
//!
//! A document holds a live lease only when its `owner` is a string and its
//! `expiresAtMs` a number: one another program wrote with other types
//! counts as free and is taken over cleanly, and fences are read with
//! `TO_NUMBER`.

/// Takes the lock if free, expired or already `@owner`'s and returns the
/// owner, fence and expiry; returns nothing when another owner holds it.
/// A held lock is only read, never written, so waiters polling it do not
/// conflict with the holder's extend and release. A write to the same
/// document in between (another claimer, or a ticket of the line, which
/// lives in the lock's document) fails the query with 1210 (first
/// creation) or 1200: the backend tries again within the deadline.
pub const ACQUIRE: &str = "LET now = DATE_NOW()
LET old = FIRST(FOR d IN @@coll FILTER d._key == @key RETURN d)
FILTER old == null || !IS_STRING(old.owner) || !IS_NUMBER(old.expiresAtMs) || old.expiresAtMs < now || old.owner == @owner
UPSERT { _key: @key }
INSERT { _key: @key, name: @name, sortKey: @sortKey, owner: @owner, fence: now, expiresAtMs: now + @ttl, expiresAt: (now + @ttl) / 1000 }
UPDATE (!IS_STRING(OLD.owner) || !IS_NUMBER(OLD.expiresAtMs) || OLD.expiresAtMs < now || OLD.owner == @owner)
  ? { name: @name, sortKey: @sortKey, owner: @owner, expiresAtMs: now + @ttl, expiresAt: (now + @ttl) / 1000,
      fence: (OLD.owner == @owner && IS_NUMBER(OLD.expiresAtMs) && OLD.expiresAtMs >= now) ? TO_NUMBER(OLD.fence) : MAX([TO_NUMBER(OLD.fence) + 1, now]) }
  : {}
IN @@coll
RETURN { owner: NEW.owner, fence: NEW.fence, expiresAtMs: NEW.expiresAtMs }";

/// Pushes the expiry if `@owner` still holds a live lease.
pub const EXTEND: &str = "LET now = DATE_NOW()
FOR d IN @@coll FILTER d._key == @key AND d.owner == @owner AND IS_NUMBER(d.expiresAtMs) AND d.expiresAtMs >= now
  UPDATE d WITH { expiresAtMs: now + @ttl, expiresAt: (now + @ttl) / 1000 } IN @@coll
  RETURN { owner: NEW.owner, fence: TO_NUMBER(NEW.fence), expiresAtMs: NEW.expiresAtMs }";

/// Clears the owner if `@owner` holds the lock (the document and its fence
/// stay).
pub const RELEASE: &str = "LET now = DATE_NOW()
FOR d IN @@coll FILTER d._key == @key AND d.owner == @owner
  UPDATE d WITH { owner: null, expiresAtMs: now, expiresAt: now / 1000 } IN @@coll OPTIONS { keepNull: false }
  RETURN true";

/// The live holder, if any.
pub const INSPECT: &str =
    "FOR d IN @@coll FILTER d._key == @key AND IS_STRING(d.owner) AND IS_NUMBER(d.expiresAtMs) AND d.expiresAtMs >= DATE_NOW()
  RETURN { owner: d.owner, fence: TO_NUMBER(d.fence), expiresAtMs: d.expiresAtMs }";

/// Clears the owner whoever it is; returns whether the lease was live.
pub const FORCE_RELEASE: &str = "LET now = DATE_NOW()
FOR d IN @@coll FILTER d._key == @key AND d.owner != null
  UPDATE d WITH { owner: null, expiresAtMs: now, expiresAt: now / 1000 } IN @@coll OPTIONS { keepNull: false }
  RETURN IS_STRING(OLD.owner) && IS_NUMBER(OLD.expiresAtMs) && OLD.expiresAtMs >= now";

/// One page of live holders whose `sortKey` starts with `@prefix` (the hex
/// of the name prefix) and sorts after `@after` (the hex of the last name
/// of the previous page, or ""), at most `@limit`, in byte order of names.
pub const LIST: &str = "LET now = DATE_NOW()
FOR d IN @@coll
  FILTER STARTS_WITH(d.sortKey, @prefix) AND d.sortKey > @after
    AND IS_STRING(d.name) AND IS_STRING(d.owner) AND IS_NUMBER(d.expiresAtMs) AND d.expiresAtMs >= now
  SORT d.sortKey
  LIMIT @limit
  RETURN { name: d.name, owner: d.owner, fence: TO_NUMBER(d.fence), expiresAtMs: d.expiresAtMs }";

/// Semaphores (`@key` from [`semaphore_key`](crate::semaphore_key)): takes
/// one of `@permits` permits for `@owner` if fewer live holders are left
/// and they were granted under the same count, or pushes the expiry of the
/// permit `@owner` holds. Expired holders are dropped by the same write. A
/// full semaphore is only read. Returns whether `@owner` holds a permit
/// now, its fence and expiry, and the stored count and live holders.
pub const CLAIM_PERMIT: &str = "LET now = DATE_NOW()
LET old = FIRST(FOR d IN @@coll FILTER d._key == @key RETURN d)
LET live = (FOR h IN (old != null && IS_ARRAY(old.holders) ? old.holders : [])
  FILTER IS_STRING(h.owner) && IS_NUMBER(h.expiresAtMs) && h.expiresAtMs >= now RETURN h)
LET mine = LENGTH(FOR h IN live FILTER h.owner == @owner RETURN 1) > 0
LET busy = LENGTH(live) > 0
LET take = !mine && LENGTH(live) < @permits && (!busy || old.permits == @permits)
LET next = MAX([TO_NUMBER(old.fence) + 1, now])
LET holders = mine
  ? (FOR h IN live RETURN h.owner == @owner ? MERGE(h, { expiresAtMs: now + @ttl }) : h)
  : (take ? APPEND(live, [{ owner: @owner, expiresAtMs: now + @ttl, fence: next }]) : live)
LET written = (FILTER mine || take
  UPSERT { _key: @key }
  INSERT { _key: @key, semaphore: @name, permits: @permits, fence: next, holders: holders,
           expiresAt: MAX(holders[*].expiresAtMs) / 1000 }
  UPDATE { semaphore: @name, permits: take ? @permits : OLD.permits, fence: take ? next : OLD.fence,
           holders: holders, expiresAt: MAX(holders[*].expiresAtMs) / 1000 }
  IN @@coll
  RETURN 1)
LET held = FIRST(FOR h IN holders FILTER h.owner == @owner RETURN h)
RETURN { held: (mine || take) && LENGTH(written) > 0, fence: TO_NUMBER(held.fence),
         expiresAtMs: held.expiresAtMs, busy: busy, permits: old.permits }";

/// Semaphores: pushes the expiry of `@owner`'s live permit.
pub const EXTEND_PERMIT: &str = "LET now = DATE_NOW()
FOR d IN @@coll FILTER d._key == @key AND IS_ARRAY(d.holders)
  FILTER LENGTH(FOR h IN d.holders FILTER h.owner == @owner && IS_NUMBER(h.expiresAtMs) && h.expiresAtMs >= now RETURN 1) > 0
  LET holders = (FOR h IN d.holders RETURN h.owner == @owner ? MERGE(h, { expiresAtMs: now + @ttl }) : h)
  UPDATE d WITH { holders: holders, expiresAt: MAX(holders[*].expiresAtMs) / 1000 } IN @@coll
  RETURN now + @ttl";

/// Semaphores: frees `@owner`'s permit.
pub const RELEASE_PERMIT: &str = "FOR d IN @@coll FILTER d._key == @key AND IS_ARRAY(d.holders) AND @owner IN d.holders[*].owner
  LET holders = (FOR h IN d.holders FILTER h.owner != @owner RETURN h)
  UPDATE d WITH { holders: holders, expiresAt: (LENGTH(holders) > 0 ? MAX(holders[*].expiresAtMs) : DATE_NOW()) / 1000 } IN @@coll
  RETURN true";

/// Semaphores: the stored count and the live holders, in fence order.
pub const INSPECT_SEMAPHORE: &str = "LET now = DATE_NOW()
FOR d IN @@coll FILTER d._key == @key
  RETURN { permits: d.permits, holders: (
    FOR h IN (IS_ARRAY(d.holders) ? d.holders : [])
      FILTER IS_STRING(h.owner) && IS_NUMBER(h.expiresAtMs) && h.expiresAtMs >= now
      SORT h.fence
      RETURN { owner: h.owner, fence: TO_NUMBER(h.fence), expiresAtMs: h.expiresAtMs }) }";

/// Semaphores: the first `@limit` semaphores whose names start with
/// `@prefix` (the name itself) and that have live holders, by name, each
/// with its stored count and live holders in fence order.
pub const LIST_SEMAPHORES: &str = "LET now = DATE_NOW()
FOR d IN @@coll
  FILTER IS_STRING(d.semaphore) AND STARTS_WITH(d.semaphore, @prefix)
  LET holders = (
    FOR h IN (IS_ARRAY(d.holders) ? d.holders : [])
      FILTER IS_STRING(h.owner) && IS_NUMBER(h.expiresAtMs) && h.expiresAtMs >= now
      SORT h.fence
      RETURN { owner: h.owner, fence: TO_NUMBER(h.fence), expiresAtMs: h.expiresAtMs })
  FILTER LENGTH(holders) > 0
  SORT d.semaphore
  LIMIT @limit
  RETURN { name: d.semaphore, permits: d.permits, holders: holders }";

/// Fair queues: the first `@limit` lines with live tickets whose `sortKey`
/// starts with `@prefix` (as [`LIST`]), in byte order of names, each with
/// its count of live tickets.
pub const LIST_QUEUES: &str = "LET now = DATE_NOW()
FOR d IN @@coll
  FILTER STARTS_WITH(d.sortKey, @prefix) AND IS_STRING(d.name) AND IS_ARRAY(d.queue)
  LET waiting = LENGTH(FOR t IN d.queue FILTER IS_NUMBER(t.expiresAtMs) && t.expiresAtMs >= now RETURN 1)
  FILTER waiting > 0
  SORT d.sortKey
  LIMIT @limit
  RETURN { name: d.name, waiting: waiting }";

/// Fair queues: puts `@owner` at the end of the lock's line (the array
/// `queue` of `{ owner, expiresAtMs }` in the lock document), or pushes
/// the expiry of its ticket; drops expired tickets; returns the ticket's
/// place: 0 for the lock's live holder, which is given no ticket, and -1
/// when the line already holds `@maxWaiters` tickets. Two writers of one
/// line conflict (1200 / 1210) and are retried.
pub const ENQUEUE: &str = "LET now = DATE_NOW()
LET old = FIRST(FOR d IN @@coll FILTER d._key == @key RETURN d)
LET live = (FOR t IN (IS_ARRAY(old.queue) ? old.queue : []) FILTER IS_NUMBER(t.expiresAtMs) && t.expiresAtMs >= now RETURN t)
LET holds = old != null && old.owner == @owner && IS_NUMBER(old.expiresAtMs) && old.expiresAtMs >= now
LET queue = holds ? live : @owner IN live[*].owner
  ? (FOR t IN live RETURN t.owner == @owner ? MERGE(t, { expiresAtMs: now + @ttl }) : t)
  : LENGTH(live) >= @maxWaiters ? live
  : APPEND(live, [{ owner: @owner, expiresAtMs: now + @ttl }])
UPSERT { _key: @key }
INSERT { _key: @key, name: @name, sortKey: @sortKey, queue: queue, expiresAt: (now + @ttl) / 1000 }
UPDATE { queue: queue, expiresAt: MAX([OLD.expiresAt, (now + @ttl) / 1000]) }
IN @@coll
RETURN holds ? 0 : POSITION(queue[*].owner, @owner, true)";

/// Fair queues: [`ACQUIRE`] for the first live ticket of the line (or
/// anyone when the line is empty), removing the winner's ticket in the
/// same write. Returns nothing, and writes nothing, when another owner
/// holds the lock or another ticket is first.
pub const CLAIM_FAIR: &str = "LET now = DATE_NOW()
LET old = FIRST(FOR d IN @@coll FILTER d._key == @key RETURN d)
LET live = (FOR t IN (IS_ARRAY(old.queue) ? old.queue : []) FILTER IS_NUMBER(t.expiresAtMs) && t.expiresAtMs >= now RETURN t)
FILTER LENGTH(live) == 0 || live[0].owner == @owner
  || (old.owner == @owner && IS_NUMBER(old.expiresAtMs) && old.expiresAtMs >= now)
FILTER old == null || !IS_STRING(old.owner) || !IS_NUMBER(old.expiresAtMs) || old.expiresAtMs < now || old.owner == @owner
UPSERT { _key: @key }
INSERT { _key: @key, name: @name, sortKey: @sortKey, owner: @owner, fence: now, expiresAtMs: now + @ttl, expiresAt: (now + @ttl) / 1000, queue: [] }
UPDATE (!IS_STRING(OLD.owner) || !IS_NUMBER(OLD.expiresAtMs) || OLD.expiresAtMs < now || OLD.owner == @owner)
  ? { name: @name, sortKey: @sortKey, owner: @owner, expiresAtMs: now + @ttl, expiresAt: (now + @ttl) / 1000,
      fence: (OLD.owner == @owner && IS_NUMBER(OLD.expiresAtMs) && OLD.expiresAtMs >= now) ? TO_NUMBER(OLD.fence) : MAX([TO_NUMBER(OLD.fence) + 1, now]),
      queue: (FOR t IN live FILTER t.owner != @owner RETURN t) }
  : {}
IN @@coll
RETURN { owner: NEW.owner, fence: NEW.fence, expiresAtMs: NEW.expiresAtMs }";

/// Fair queues: pushes the expiry of `@owner`'s live ticket. Like
/// [`ENQUEUE`], it keeps the TTL field `expiresAt` at least at the
/// ticket's expiry, so the TTL index never removes a line under its live
/// waiters (the lease is `expiresAtMs`, which tickets never touch).
pub const EXTEND_TICKET: &str = "LET now = DATE_NOW()
FOR d IN @@coll FILTER d._key == @key && IS_ARRAY(d.queue)
    && LENGTH(FOR t IN d.queue FILTER t.owner == @owner && IS_NUMBER(t.expiresAtMs) && t.expiresAtMs >= now RETURN 1) > 0
  UPDATE d WITH { queue: (FOR t IN d.queue RETURN t.owner == @owner ? MERGE(t, { expiresAtMs: now + @ttl }) : t),
    expiresAt: MAX([d.expiresAt, (now + @ttl) / 1000]) } IN @@coll
  RETURN true";

/// Fair queues: removes `@owner`'s ticket.
pub const LEAVE_QUEUE: &str =
    "FOR d IN @@coll FILTER d._key == @key && IS_ARRAY(d.queue) && @owner IN d.queue[*].owner
  UPDATE d WITH { queue: (FOR t IN d.queue FILTER t.owner != @owner RETURN t) } IN @@coll
  RETURN true";

/// Read/write locks (`@key` from [`rwlock_key`](crate::rwlock_key)): a
/// reader (`@write` false) enters when no live writer holds the lock and,
/// with `@first`, no live writer's intent is recorded; the writer when no
/// live holder is left; a retry pushes the owner's expiry. A refused
/// writer with `@intent` records its intent when no other writer's is
/// live. Expired holders and intents are dropped by the same write; a
/// refusal that records nothing is only read. Returns whether `@owner`
/// holds a lease now, its fence and expiry.
pub const CLAIM_RW: &str = "LET now = DATE_NOW()
LET old = FIRST(FOR d IN @@coll FILTER d._key == @key RETURN d)
LET live = (FOR h IN (old != null && IS_ARRAY(old.holders) ? old.holders : [])
  FILTER IS_STRING(h.owner) && IS_NUMBER(h.expiresAtMs) && h.expiresAtMs >= now RETURN h)
LET waiting = (FOR i IN (old != null && IS_ARRAY(old.intents) ? old.intents : [])
  FILTER IS_STRING(i.owner) && IS_NUMBER(i.untilMs) && i.untilMs >= now RETURN i)
LET mine = LENGTH(FOR h IN live FILTER h.owner == @owner RETURN 1) > 0
LET writer = LENGTH(FOR h IN live FILTER h.w == true RETURN 1) > 0
LET take = !mine && (@write ? LENGTH(live) == 0 : (!writer && !(@first && LENGTH(waiting) > 0)))
LET record = @write && @intent && !mine && !take && (LENGTH(waiting) == 0 || @owner IN waiting[*].owner)
LET next = MAX([TO_NUMBER(old.fence) + 1, now])
LET holders = mine
  ? (FOR h IN live RETURN h.owner == @owner ? MERGE(h, { expiresAtMs: now + @ttl }) : h)
  : (take ? APPEND(live, [{ owner: @owner, expiresAtMs: now + @ttl, fence: next, w: @write }]) : live)
LET intents = take ? (FOR i IN waiting FILTER i.owner != @owner RETURN i)
  : (record ? [{ owner: @owner, untilMs: now + @ttl }] : waiting)
LET until = MAX(APPEND(APPEND(holders[*].expiresAtMs, intents[*].untilMs), [now])) / 1000
LET written = (FILTER mine || take || record
  UPSERT { _key: @key }
  INSERT { _key: @key, rwlock: @name, fence: next, holders: holders, intents: intents, expiresAt: until }
  UPDATE { rwlock: @name, fence: take ? next : OLD.fence, holders: holders, intents: intents, expiresAt: until }
  IN @@coll
  RETURN 1)
LET held = FIRST(FOR h IN holders FILTER h.owner == @owner RETURN h)
RETURN { held: (mine || take) && LENGTH(written) > 0, fence: TO_NUMBER(held.fence),
         expiresAtMs: held.expiresAtMs }";

/// Read/write locks: frees `@owner`'s lease and withdraws its intent;
/// returns whether it held a lease, whether that was the writer's, and
/// whether an intent was withdrawn.
pub const RELEASE_RW: &str = "FOR d IN @@coll FILTER d._key == @key
  LET before = IS_ARRAY(d.holders) ? d.holders : []
  LET waiting = IS_ARRAY(d.intents) ? d.intents : []
  FILTER @owner IN before[*].owner || @owner IN waiting[*].owner
  LET gone = FIRST(FOR h IN before FILTER h.owner == @owner RETURN h)
  LET holders = (FOR h IN before FILTER h.owner != @owner RETURN h)
  LET intents = (FOR i IN waiting FILTER i.owner != @owner RETURN i)
  UPDATE d WITH { holders: holders, intents: intents,
    expiresAt: MAX(APPEND(APPEND(holders[*].expiresAtMs, intents[*].untilMs), [DATE_NOW()])) / 1000 } IN @@coll
  RETURN { held: gone != null, writer: gone != null && gone.w == true, withdrawn: @owner IN waiting[*].owner }";

/// Read/write locks: the live holders in fence order, and whether a live
/// writer's intent is recorded.
pub const INSPECT_RW: &str = "LET now = DATE_NOW()
FOR d IN @@coll FILTER d._key == @key
  RETURN { holders: (
    FOR h IN (IS_ARRAY(d.holders) ? d.holders : [])
      FILTER IS_STRING(h.owner) && IS_NUMBER(h.expiresAtMs) && h.expiresAtMs >= now
      SORT h.fence
      RETURN { owner: h.owner, fence: TO_NUMBER(h.fence), expiresAtMs: h.expiresAtMs, w: h.w == true }),
    waiting: LENGTH(FOR i IN (IS_ARRAY(d.intents) ? d.intents : [])
      FILTER IS_STRING(i.owner) && IS_NUMBER(i.untilMs) && i.untilMs >= now RETURN 1) > 0 }";
