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
  index(4, ARGV[5], ARGV[6])
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
  index(4, ARGV[8], ARGV[9])
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
index(4, '', ARGV[2])
return -1
";

/// Keeps the keeper's index (KEYS[at], its claims' ends and owners after it) in the same
/// script as the write, on a single server (a cluster keeps the index on another slot, so
/// there KEYS[at] is nil and the write is a command of its own): `dies` in ms, or '' to leave
/// the index, and the keepers' claim with it.
pub(super) const INDEX: &str = r"
local function index(at, dies, member)
  local due = KEYS[at]
  if due == nil then return end
  if dies == '' then
    redis.call('ZREM', due, member)
    redis.call('ZREM', KEYS[at + 1], member)
    redis.call('HDEL', KEYS[at + 2], member)
  else
    redis.call('ZADD', due, dies, member)
  end
end
";

/// [`INDEX`] alone: in a cluster, after the write.
pub(super) const REINDEX: &str = r"
index(1, ARGV[1], ARGV[2])
return 1
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
if ARGV[4] == 'dead' then index(3, '', ARGV[5]) end
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

/// The keeper's page of the index KEYS[1] (keys of prefix ARGV[1] dying by ARGV[2] ms, after
/// (ARGV[3] ms, ARGV[4]); ARGV[3] '' for the first page; ARGV[5] entries scanned at most,
/// whatever their prefix), each free entry claimed for owner ARGV[6] for ARGV[7] ms: the
/// claims' ends in the sorted set KEYS[2], their owners in the hash KEYS[3] (both on the
/// index's slot). Claims that ran out are dropped first. Answers the page's last entry
/// scanned (key, ms; '' when the window ended) and the claimed entries, key and ms in turn.
pub(super) const CLAIM_DUE: &str = r"
local now = now_ms()
local over = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
if #over > 0 then
  redis.call('ZREM', KEYS[2], unpack(over))
  redis.call('HDEL', KEYS[3], unpack(over))
end
-- Whether key a comes after key b in Redis's order of members (bytes, not the locale's).
local function later(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x > y end
  end
  return #a > #b
end
local limit = tonumber(ARGV[5])
local after = tonumber(ARGV[3])
local min = '-inf'
if after then min = ARGV[3] end
local claimed = {}
local scanned, offset = 0, 0
local last_key, last_ms = '', ''
while scanned < limit do
  local rows = redis.call('ZRANGEBYSCORE', KEYS[1], min, ARGV[2], 'WITHSCORES', 'LIMIT', offset, limit)
  offset = offset + #rows / 2
  for i = 1, #rows, 2 do
    local key, ms = rows[i], rows[i + 1]
    if scanned < limit and (after == nil or tonumber(ms) > after or later(key, ARGV[4])) then
      scanned = scanned + 1
      last_key, last_ms = key, ms
      if string.sub(key, 1, #ARGV[1]) == ARGV[1] then
        local ends = redis.call('ZSCORE', KEYS[2], key)
        if ends == false or tonumber(ends) <= now or redis.call('HGET', KEYS[3], key) == ARGV[6] then
          redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), key)
          redis.call('HSET', KEYS[3], key, ARGV[6])
          claimed[#claimed + 1] = key
          claimed[#claimed + 1] = ms
        end
      end
    end
  end
  if #rows < 2 * limit then break end
end
if scanned < limit then last_key, last_ms = '', '' end
return {last_key, last_ms, claimed}
";

/// Gives up owner ARGV[1]'s claims (KEYS[1] their ends, KEYS[2] their owners) on the keys
/// ARGV[2..]; another owner's stay.
pub(super) const RELEASE_CLAIMS: &str = r"
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
  end
end
return 1
";
