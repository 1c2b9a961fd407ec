//! The schema and its migrations, and every statement the store runs. Each write is one
//! statement: its compare-and-set on the version, its fence (the writer's lease row, read
//! `FOR SHARE` so that no one takes the lock until the write commits) and the keeper's index
//! column change together or not at all.

/// The database's clock, in milliseconds since the Unix epoch: marks and leases are stamped
/// with it, so no replica's clock decides how old one is.
macro_rules! now_ms {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}

/// The lease `$2` of key `$1`, if it is still held, with whether anyone waits for it; `$2`
/// NULL for a write without a lock.
macro_rules! fence {
    () => {
        concat!(
            "WITH fence AS (SELECT waited FROM tokenkit_locks WHERE key = $1 AND fence = $2 AND expires_ms > ",
            now_ms!(),
            " FOR SHARE) "
        )
    };
}

/// The condition that `fence!` found the lease (or that the write takes none).
macro_rules! fenced {
    () => {
        "($2::text IS NULL OR EXISTS (SELECT 1 FROM fence))"
    };
}

/// The channel a save of a key notifies, with the key as the payload (delivered when the
/// statement's transaction commits): what wakes the waiters.
pub(super) const CHANNEL: &str = "tokenkit_changed";

/// The end of a statement whose CTE `$cte` returns `key` and `version`: the versions, each
/// key notified on [`CHANNEL`] where a process waits for its lock (`fence!` found the lease
/// marked `waited`) or the write took none. Only then: a notifying commit holds the server's
/// one notification lock until it is durable, so notifying every save would serialize every
/// renewal's commit behind the others' flushes (measured: 10,000 saves a second fell to 500).
macro_rules! notifying {
    ($cte:literal) => {
        concat!(
            " SELECT ",
            $cte,
            ".version, CASE WHEN $2::text IS NULL OR EXISTS (SELECT 1 FROM fence WHERE waited) \
                THEN pg_notify('tokenkit_changed', ",
            $cte,
            ".key) END FROM ",
            $cte
        )
    };
}

/// The schema version this build writes.
pub(super) const SCHEMA_VERSION: i32 = 4;

/// The migrations, in order: migration `i` takes a database from version `i` to `i + 1`.
pub(super) const MIGRATIONS: [&str; 4] = [
    // 1: sets (a tombstone is a row whose `data` is NULL, keeping the removed version), each
    // mark at the database's clock, the keeper's index, and the locks.
    "CREATE TABLE tokenkit_sets (
        key text PRIMARY KEY,
        version bigint NOT NULL,
        data bytea,
        sending_ms bigint,
        dead_ms bigint,
        expiring_ms bigint,
        announced_ms bigint,
        dies_ms bigint
    );
    CREATE INDEX tokenkit_sets_due ON tokenkit_sets (dies_ms, key) WHERE dies_ms IS NOT NULL;
    CREATE TABLE tokenkit_locks (
        key text PRIMARY KEY,
        fence text NOT NULL,
        expires_ms bigint NOT NULL
    );",
    // 2: the leases unlogged. A lease guards nothing by itself: every write it allows is
    // fenced by its row in the same statement, and a token about to be sent is marked in the
    // (logged) sets. So a lease may vanish (a crash empties an unlogged table, a promoted
    // replica starts with it empty): its holder's fenced writes then fail, and the marks
    // keep anyone from sending a token in flight. In return taking and releasing a lease
    // writes no WAL and waits for no flush: a commit fewer to make durable per renewal.
    "ALTER TABLE tokenkit_locks SET UNLOGGED;",
    // 3: the keepers' claims on due keys, so that replicas split the index. A claim is a
    // hint (the lock and the version decide every write): unlogged, as a lease is.
    "CREATE UNLOGGED TABLE tokenkit_claims (
        key text PRIMARY KEY,
        owner text NOT NULL,
        until_ms bigint NOT NULL
    );",
    // 4: whether a process waits for a lease: its holder's save (or release) notifies the
    // waiters only then.
    "ALTER TABLE tokenkit_locks ADD COLUMN waited boolean NOT NULL DEFAULT false;",
];

/// The migrations' own bookkeeping, and the lock that keeps two processes from migrating at
/// once (held by the migrating transaction only: it ends with it, whatever the pool does).
pub(super) const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7305402991)";
pub(super) const META: &str = "CREATE TABLE IF NOT EXISTS tokenkit_meta (
    id int PRIMARY KEY CHECK (id = 1),
    schema_version int NOT NULL
)";
pub(super) const META_VERSION: &str = "SELECT schema_version FROM tokenkit_meta WHERE id = 1";
pub(super) const META_SET: &str = "INSERT INTO tokenkit_meta (id, schema_version) VALUES (1, $1)
    ON CONFLICT (id) DO UPDATE SET schema_version = EXCLUDED.schema_version";

/// `$1` key: the set, its marks and the database's clock.
pub(super) const LOAD: &str = concat!(
    "SELECT version, data, sending_ms, dead_ms, expiring_ms, announced_ms, ",
    now_ms!(),
    " FROM tokenkit_sets WHERE key = $1 AND data IS NOT NULL"
);

/// The write of `$1` (key) over version `$3` with `$4` (data) and `$5` (dies), fenced by `$2`.
macro_rules! save_over {
    () => {
        concat!(
            fence!(),
            ", saved AS (UPDATE tokenkit_sets SET version = $3 + 1, data = $4, sending_ms = NULL,
        dead_ms = NULL, expiring_ms = NULL, announced_ms = NULL, dies_ms = $5
    WHERE key = $1 AND version = $3 AND data IS NOT NULL AND ",
            fenced!(),
            " RETURNING key, version)"
        )
    };
}

/// The first write of `$1` (key) with `$3` (data) and `$4` (dies), fenced by `$2`: version 1,
/// or the one after a removed set's.
macro_rules! save_new {
    () => {
        concat!(
            fence!(),
            ", saved AS (INSERT INTO tokenkit_sets AS s (key, version, data, dies_ms)
    SELECT $1, 1, $3::bytea, $4::bigint WHERE ",
            fenced!(),
            " ON CONFLICT (key) DO UPDATE SET version = s.version + 1, data = EXCLUDED.data,
        sending_ms = NULL, dead_ms = NULL, expiring_ms = NULL, announced_ms = NULL,
        dies_ms = EXCLUDED.dies_ms
    WHERE s.data IS NULL
    RETURNING key, version)"
        )
    };
}

/// The lease `$2` of key `$1` given up, in the same statement as the write `saved`, if it
/// landed (the lease's row was read `FOR SHARE` by `fence!` above, by this statement only).
macro_rules! releasing {
    () => {
        ", released AS (DELETE FROM tokenkit_locks WHERE key = $1 AND fence = $2
        AND EXISTS (SELECT 1 FROM saved))"
    };
}

/// `$1` key, `$2` fence, `$3` expected version, `$4` data, `$5` dies: the next version, if the
/// stored one is still `$3`.
pub(super) const SAVE_OVER: &str = concat!(save_over!(), notifying!("saved"));

/// [`SAVE_OVER`], releasing the lease where it writes.
pub(super) const SAVE_OVER_RELEASING: &str =
    concat!(save_over!(), releasing!(), notifying!("saved"));

/// `$1` key, `$2` fence, `$3` data, `$4` dies: version 1, or the one after a removed set's.
pub(super) const SAVE_NEW: &str = concat!(save_new!(), notifying!("saved"));

/// [`SAVE_NEW`], releasing the lease where it writes.
pub(super) const SAVE_NEW_RELEASING: &str = concat!(save_new!(), releasing!(), notifying!("saved"));

/// `$1` key, `$2` fence, `$3` version, `$4` data, `$5`–`$8` marks, `$9` dies: the set as it
/// is, over nothing or an older version, never over a removal.
pub(super) const RESTORE: &str = concat!(
    fence!(),
    "INSERT INTO tokenkit_sets AS s
        (key, version, data, sending_ms, dead_ms, expiring_ms, announced_ms, dies_ms)
    SELECT $1, $3::bigint, $4::bytea, $5::bigint, $6::bigint, $7::bigint, $8::bigint, $9::bigint WHERE ",
    fenced!(),
    " ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, data = EXCLUDED.data,
        sending_ms = EXCLUDED.sending_ms, dead_ms = EXCLUDED.dead_ms,
        expiring_ms = EXCLUDED.expiring_ms, announced_ms = EXCLUDED.announced_ms,
        dies_ms = EXCLUDED.dies_ms
    WHERE s.data IS NOT NULL AND s.version < EXCLUDED.version
    RETURNING version"
);

/// `$1` key, `$2` fence: the set gone, its version kept as a tombstone, its claim with it.
pub(super) const DELETE: &str = concat!(
    fence!(),
    ", gone AS (UPDATE tokenkit_sets SET data = NULL, sending_ms = NULL, dead_ms = NULL,
        expiring_ms = NULL, announced_ms = NULL, dies_ms = NULL
    WHERE key = $1 AND ",
    fenced!(),
    " RETURNING 1), unclaimed AS (DELETE FROM tokenkit_claims WHERE key = $1
        AND EXISTS (SELECT 1 FROM gone))
    SELECT 1 FROM gone"
);

/// `$1` key: the stored version and whether it is a removal's.
pub(super) const CURRENT: &str = "SELECT version, data IS NULL FROM tokenkit_sets WHERE key = $1";

/// `$1` key, `$2` fence: whether the lease is still held.
pub(super) const HOLDS: &str = concat!(
    "SELECT EXISTS (SELECT 1 FROM tokenkit_locks WHERE key = $1 AND fence = $2 AND expires_ms > ",
    now_ms!(),
    ")"
);

/// `$1` key, `$2` fence, `$3` version: marks its refresh token as sent (an earlier mark of the
/// version keeps its time).
pub(super) const MARK_SENDING: &str = concat!(
    fence!(),
    "UPDATE tokenkit_sets SET sending_ms = COALESCE(sending_ms, ",
    now_ms!(),
    ") WHERE key = $1 AND version = $3 AND data IS NOT NULL AND ",
    fenced!(),
    " RETURNING 1"
);

/// `$1` key, `$2` fence, `$3` version: clears the sending mark.
pub(super) const CLEAR_SENDING: &str = concat!(
    fence!(),
    "UPDATE tokenkit_sets SET sending_ms = NULL WHERE key = $1 AND version = $3 AND ",
    fenced!()
);

/// The statement that records `column` of version `$3` once (`$1` key, `$2` fence); a dead
/// set leaves the keeper's index.
pub(super) fn mark_reported(column: &str, dead: bool) -> String {
    let index = if dead { ", dies_ms = NULL" } else { "" };
    format!(
        "{}UPDATE tokenkit_sets SET {column} = {}{index}
        WHERE key = $1 AND version = $3 AND data IS NOT NULL AND {column} IS NULL AND {}
        RETURNING 1",
        fence!(),
        now_ms!(),
        fenced!()
    )
}

/// `$1` prefix: every key that holds a set under it. `starts_with` needs no escaping of `%`
/// and `_`, as a `LIKE` pattern would.
pub(super) const LIST: &str =
    "SELECT key FROM tokenkit_sets WHERE data IS NOT NULL AND starts_with(key, $1)";

/// `$1` prefix, `$2` until (ms), `$3`/`$4` after (ms, key; NULL for the first page), `$5`
/// limit: the keeper's page, from the index.
pub(super) const DUE: &str = "SELECT key, dies_ms FROM tokenkit_sets
    WHERE dies_ms IS NOT NULL AND dies_ms <= $2 AND starts_with(key, $1)
        AND ($3::bigint IS NULL OR (dies_ms, key) > ($3, $4::text))
    ORDER BY dies_ms, key LIMIT $5";

/// `$1`–`$5` as [`DUE`], `$6` owner, `$7` lease (ms): the page, each entry with whether it
/// is now claimed by `$6` (it was unclaimed, its claim ran out at the database's clock, or it
/// was `$6`'s). Two keepers claiming the same page take its rows in the same (index) order,
/// so they wait for each other rather than deadlock.
pub(super) const CLAIM_DUE: &str = concat!(
    "WITH page AS (SELECT key, dies_ms FROM tokenkit_sets
        WHERE dies_ms IS NOT NULL AND dies_ms <= $2 AND starts_with(key, $1)
            AND ($3::bigint IS NULL OR (dies_ms, key) > ($3, $4::text))
        ORDER BY dies_ms, key LIMIT $5),
    claimed AS (INSERT INTO tokenkit_claims AS c (key, owner, until_ms)
        SELECT key, $6::text, ",
    now_ms!(),
    " + $7::bigint FROM page ORDER BY dies_ms, key
        ON CONFLICT (key) DO UPDATE SET owner = EXCLUDED.owner, until_ms = EXCLUDED.until_ms
        WHERE c.until_ms <= ",
    now_ms!(),
    " OR c.owner = EXCLUDED.owner
        RETURNING key)
    SELECT page.key, page.dies_ms, claimed.key IS NOT NULL FROM page
        LEFT JOIN claimed ON claimed.key = page.key
    ORDER BY page.dies_ms, page.key"
);

/// `$1` keys, `$2` owner: its claims on them given up.
pub(super) const RELEASE_CLAIMS: &str =
    "DELETE FROM tokenkit_claims WHERE key = ANY($1) AND owner = $2";

/// `$1` key, `$2` fence, `$3` ttl (ms): whether the lock was taken (it was free or its lease
/// ran out). A lease still held is marked `waited` instead, in the same statement: its
/// holder's save, which reads the row `FOR SHARE`, either comes after this mark and notifies,
/// or before it and has released the lease this statement then takes. (`EXCLUDED.expires_ms -
/// $3` is this statement's one reading of the clock.)
pub(super) const TRY_LOCK: &str = concat!(
    "INSERT INTO tokenkit_locks AS l (key, fence, expires_ms) VALUES ($1, $2, ",
    now_ms!(),
    " + $3::bigint) ON CONFLICT (key) DO UPDATE SET
        fence = CASE WHEN l.expires_ms <= EXCLUDED.expires_ms - $3::bigint
            THEN EXCLUDED.fence ELSE l.fence END,
        expires_ms = CASE WHEN l.expires_ms <= EXCLUDED.expires_ms - $3::bigint
            THEN EXCLUDED.expires_ms ELSE l.expires_ms END,
        waited = l.expires_ms > EXCLUDED.expires_ms - $3::bigint
    RETURNING fence = $2::text"
);

/// `$1` key, `$2` fence, `$3` ttl (ms): the lease extended, while it is still held.
pub(super) const EXTEND: &str = concat!(
    "UPDATE tokenkit_locks SET expires_ms = ",
    now_ms!(),
    " + $3::bigint WHERE key = $1 AND fence = $2 AND expires_ms > ",
    now_ms!(),
    " RETURNING 1"
);

/// `$1` key, `$2` fence: the lease given up, its waiters notified (see [`TRY_LOCK`]).
pub(super) const RELEASE: &str = "WITH gone AS (DELETE FROM tokenkit_locks
        WHERE key = $1 AND fence = $2 RETURNING key, waited)
    SELECT CASE WHEN waited THEN pg_notify('tokenkit_changed', key) END FROM gone";
