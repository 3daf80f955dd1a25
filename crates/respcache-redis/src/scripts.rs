//! The Lua scripts the store runs server-side, each atomic and one
//! round trip (`EVALSHA`, falling back to `EVAL` after a server restart).

use std::sync::LazyLock;

use redis::Script;

/// `set_expiry` without rewriting the payload: patches the envelope header
/// in place — flag bit 0 (byte 4) and `expires_at` (bytes 16..24) — with
/// `SETRANGE`, then moves the native expiry (`PEXPIREAT`, or `PERSIST`).
///
/// `KEYS[1]`: the entry. `ARGV[1]`: the envelope magic; `ARGV[2]`: `1` if
/// the entry now expires, else `0`; `ARGV[3]`: `expires_at` as 8 bytes,
/// big-endian; `ARGV[4]`: the purge time in ms, or empty for none.
///
/// Returns `1` when patched, `0` when there is no entry, `-1` when the value
/// is not an envelope this version understands (left untouched).
pub(crate) static SET_EXPIRY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local header = redis.call('GETRANGE', KEYS[1], 0, 23)
if string.len(header) == 0 then
  return 0
end
if string.len(header) < 24 or string.sub(header, 1, 4) ~= ARGV[1] then
  return -1
end
local flags = string.byte(header, 5)
if ARGV[2] == '1' then
  flags = bit.bor(flags, 1)
else
  flags = bit.band(flags, 254)
end
redis.call('SETRANGE', KEYS[1], 4, string.char(flags))
redis.call('SETRANGE', KEYS[1], 16, ARGV[3])
if ARGV[4] == '' then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
end
return 1
",
    )
});

/// Compare-and-delete for `clear(Fresh | Expired)`: deletes `KEYS[i]` only
/// if its 24-byte header still equals `ARGV[i]`, the header the client
/// judged. An entry rewritten or re-timed since it was read is kept.
/// Returns how many keys were deleted.
pub(crate) static DELETE_IF_HEADER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GETRANGE', key, 0, 23) == ARGV[i] then
    n = n + redis.call('UNLINK', key)
  end
end
return n
",
    )
});

/// Releases a lease only for its holder: deletes `KEYS[1]` if it holds the
/// token `ARGV[1]`. Returns `1` when deleted, else `0`.
pub(crate) static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});
