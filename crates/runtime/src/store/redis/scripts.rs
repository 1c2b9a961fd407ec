//! The Lua scripts: each write, mark and lock step is one atomic script on the key's slot.

/// The script made of these parts, hashed once per process (not once per call).
macro_rules! script {
    ($($part:expr),+) => {{
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(&[$($part),+].concat()));
        &*SCRIPT
    }};
}
pub(super) use script;

/// Fails with -2 unless the lock (KEYS[2]) holds the fence (ARGV[1]; '' for unfenced).
pub(super) const FENCE: &str = r"
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return -2 end
";

/// Writes `data` (ARGV[4]) as version ARGV[3] only if the stored version is still ARGV[2] (''
/// for none); a new version has no marks; the index gets ARGV[5] for ARGV[6]; ARGV[7] = '1'
/// gives the (fenced) lock up with the write. Over a removal (the tombstone KEYS[3]) the
/// version must be past the removed one: -3 asks the writer to number it so.
pub(super) const COMPARE_AND_SET: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
if (current == false and ARGV[2] == '') or current == ARGV[2] then
  if current == false then
    local gone = redis.call('GET', KEYS[3])
    if gone and tonumber(gone) >= tonumber(ARGV[3]) then return -3 end
    redis.call('DEL', KEYS[3])
  end
  redis.call('HSET', KEYS[1], 'version', ARGV[3], 'data', ARGV[4])
  redis.call('HDEL', KEYS[1], 'sending', 'sending_at', 'dead', 'dead_at', 'expiring', 'expiring_at', 'announced', 'announced_at')
  index(KEYS[4], ARGV[5], ARGV[6])
  if ARGV[7] == '1' then redis.call('DEL', KEYS[2]) end
  return -1
end
if current == false then return 0 end
return tonumber(current)
";

/// Writes `data` (ARGV[3]) as version ARGV[2] if no version is stored or an older one, with a
/// sending mark at ARGV[4] (ms), a dead mark at ARGV[5], an expiring one at ARGV[6] and an
/// announced one at ARGV[7], each unless it is ''. Never over a removal (the tombstone KEYS[3]): that answers its version.
pub(super) const RESTORE: &str = r"
local current = redis.call('HGET', KEYS[1], 'version')
local gone = redis.call('GET', KEYS[3])
if current == false and gone then return tonumber(gone) end
if current == false or tonumber(current) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'data', ARGV[3])
  redis.call('HDEL', KEYS[1], 'sending', 'sending_at', 'dead', 'dead_at', 'expiring', 'expiring_at', 'announced', 'announced_at')
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'sending', ARGV[2], 'sending_at', ARGV[4])
  end
  if ARGV[5] ~= '' then
    redis.call('HSET', KEYS[1], 'dead', ARGV[2], 'dead_at', ARGV[5])
  end
  if ARGV[6] ~= '' then
    redis.call('HSET', KEYS[1], 'expiring', ARGV[2], 'expiring_at', ARGV[6])
  end
  if ARGV[7] ~= '' then
    redis.call('HSET', KEYS[1], 'announced', ARGV[2], 'announced_at', ARGV[7])
  end
  index(KEYS[4], ARGV[8], ARGV[9])
  return -1
end
return tonumber(current)
";

/// Deletes the set, leaving its last version as a tombstone (KEYS[3]) so that versions never
/// repeat for the key.
pub(super) const DELETE: &str = r"
local version = redis.call('HGET', KEYS[1], 'version')
if version then
  local gone = redis.call('GET', KEYS[3])
  if gone == false or tonumber(gone) < tonumber(version) then
    redis.call('SET', KEYS[3], version)
  end
end
redis.call('DEL', KEYS[1])
index(KEYS[4], '', ARGV[2])
return -1
";

/// Keeps the keeper's index in the same script as the write, on a single server (a cluster
/// keeps the index on another slot, so there `due` is nil and the write is a command of its
/// own): `dies` in ms, or '' to leave the index.
pub(super) const INDEX: &str = r"
local function index(due, dies, member)
  if due == nil then return end
  if dies == '' then
    redis.call('ZREM', due, member)
  else
    redis.call('ZADD', due, dies, member)
  end
end
";

/// Redis's own clock, in milliseconds: marks are stamped with it, and loads read it, so that
/// no replica's clock decides how old a mark is.
pub(super) const NOW_MS: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
";

/// The set's fields and Redis's clock (ms), in one call.
pub(super) const LOAD: &str = r"
return {redis.call('HMGET', KEYS[1], 'data', 'sending', 'sending_at', 'dead', 'dead_at', 'expiring', 'expiring_at', 'announced', 'announced_at'), now_ms()}
";

/// Takes the lock KEYS[1] for the token ARGV[1] for ARGV[2] ms if it is free, and then reads
/// the set KEYS[2] as [`LOAD`] does; nil when another holder has the lock.
pub(super) const LOCK_LOADING: &str = r"
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return {redis.call('HMGET', KEYS[2], 'data', 'sending', 'sending_at', 'dead', 'dead_at', 'expiring', 'expiring_at', 'announced', 'announced_at'), now_ms()}
";

/// Marks (ARGV[3] = '1', at Redis's time) or clears (ARGV[3] = '') the sending mark of
/// version ARGV[2], if it is current. An existing mark of that version keeps its time: when
/// the token was first sent.
pub(super) const MARK: &str = r"
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[2] then return 0 end
if ARGV[3] ~= '' then
  if redis.call('HGET', KEYS[1], 'sending') ~= ARGV[2] then
    redis.call('HSET', KEYS[1], 'sending', ARGV[2], 'sending_at', now_ms())
  end
elseif redis.call('HGET', KEYS[1], 'sending') == ARGV[2] then
  redis.call('HDEL', KEYS[1], 'sending', 'sending_at')
end
return 1
";

/// Gives version ARGV[2] the mark named ARGV[4] (`dead`, `expiring`), made now (Redis's
/// clock), if it is current and not marked so yet: 1 for the one call that marks it.
pub(super) const MARK_REPORTED: &str = r"
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[2] then return 0 end
if redis.call('HGET', KEYS[1], ARGV[4]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[2], ARGV[4] .. '_at', now_ms())
if ARGV[4] == 'dead' then index(KEYS[3], '', ARGV[5]) end
return 1
";

/// Extends the lock only if this holder still owns it.
pub(super) const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Deletes the lock only if this holder still owns it.
pub(super) const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";
