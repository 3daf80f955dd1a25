//! The Lua scripts the store runs server-side, each atomic and one
//! round trip: `EVALSHA`, and when the server does not know the script
//! (after a restart) `EVAL` with its text, sent to the same node.
//!
//! The `redis` crate's own fallback sends `SCRIPT LOAD` to every master of
//! a cluster; right after a master restarts that fan-out timed out now and
//! then (1 of 4 attempts in `tests/cluster_fault.rs`), while `EVAL` goes
//! only where the keys live.

use std::sync::LazyLock;

use redis::{Cmd, ToRedisArgs};

/// A Lua script: its text and SHA-1.
pub(crate) struct Script {
    code: &'static str,
    hash: String,
}

impl Script {
    fn new(code: &'static str) -> Self {
        Script {
            code,
            hash: redis::Script::new(code).get_hash().to_owned(),
        }
    }

    /// A call with no keys or arguments yet.
    pub(crate) fn prepare_invoke(&self) -> Invocation<'_> {
        Invocation {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        }
    }

    /// A call with its first key.
    pub(crate) fn key(&self, key: impl ToRedisArgs) -> Invocation<'_> {
        let mut call = self.prepare_invoke();
        call.key(key);
        call
    }
}

/// One call of a [`Script`]: keys and arguments.
pub(crate) struct Invocation<'a> {
    script: &'a Script,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

impl Invocation<'_> {
    /// Adds a key (`KEYS[n]`).
    pub(crate) fn key(&mut self, key: impl ToRedisArgs) -> &mut Self {
        self.keys.extend(key.to_redis_args());
        self
    }

    /// Adds an argument (`ARGV[n]`).
    pub(crate) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        self.args.extend(arg.to_redis_args());
        self
    }

    /// `EVALSHA <sha> …`.
    pub(crate) fn evalsha(&self) -> Cmd {
        self.command("EVALSHA", &self.script.hash)
    }

    /// `EVAL <text> …`.
    pub(crate) fn eval(&self) -> Cmd {
        self.command("EVAL", self.script.code)
    }

    fn command(&self, name: &str, script: &str) -> Cmd {
        let mut cmd = redis::cmd(name);
        cmd.arg(script).arg(self.keys.len());
        for key in &self.keys {
            cmd.arg(key.as_slice());
        }
        for arg in &self.args {
            cmd.arg(arg.as_slice());
        }
        cmd
    }
}

/// `set_expiry` without rewriting the payload: patches the envelope header
/// in place — flag bit 0 (byte 4) and `expires_at` (bytes 16..24) — with
/// `SETRANGE`, then moves the native expiry (`PEXPIREAT`, or `PERSIST`).
///
/// `KEYS[1]`: the entry. `ARGV[1]`: the envelope magic; `ARGV[2]`: `1` if
/// the entry now expires, else `0`; `ARGV[3]`: `expires_at` as 8 bytes,
/// big-endian; `ARGV[4]`: the purge time in ms, or empty for none.
///
/// `ARGV[5]`: the magic of format 2 (an entry with tags), also accepted.
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
local magic = string.sub(header, 1, 4)
if string.len(header) < 24 or (magic ~= ARGV[1] and magic ~= ARGV[5]) then
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

/// One page of `purge_tag`. `KEYS[1]`: the tag's set; `KEYS[2..]`: entry
/// keys read from it. `ARGV[i]` (for `KEYS[i + 1]`): what the client saw —
/// the 24-byte header followed by the value's length in decimal, or empty
/// when there was no value; `ARGV[#KEYS - 1 + i]`: `1` to delete the entry
/// (it carried the tag), `0` to only drop it from the set (gone, or
/// rewritten without the tag).
///
/// An entry whose header and length changed since the client read it was
/// rewritten meanwhile: it is neither deleted nor dropped from the set (a
/// rewrite with the tag added itself to the set; one without leaves a
/// stale member, which the next purge drops). Returns how many entries
/// were deleted.
pub(crate) static PURGE_TAGGED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = 0
local count = #KEYS - 1
for i = 1, count do
  local key = KEYS[i + 1]
  local seen = ''
  local len = redis.call('STRLEN', key)
  if len > 0 then
    seen = redis.call('GETRANGE', key, 0, 23) .. len
  end
  if seen == ARGV[i] then
    if ARGV[count + i] == '1' then
      n = n + redis.call('UNLINK', key)
    end
    redis.call('SREM', KEYS[1], key)
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
