"""The Redis store's Lua scripts, kept apart from the Python that calls them.

Every per-subject script touches only keys tagged `{<subject>}`, so it runs on
one Redis Cluster slot; the global ones touch only `{global}` keys. When ARGV[1]
is empty the script reads Redis's clock (`TIME`), so every replica agrees on
time; tests pass an explicit `now` instead. Lists hold timestamps newest first.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

_PRELUDE = """
local function clock(arg)
  local now = tonumber(arg)
  if now then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(n) return string.format('%d', n) end
local function ts_of(entry) return tonumber(string.match(entry, '^%-?%d+')) end
local function purge(key, cutoff)
  while true do
    local last = redis.call('LINDEX', key, -1)
    if not last or ts_of(last) > cutoff then return end
    redis.call('RPOP', key)
  end
end
local BAN_FIELDS = {'expires_at', 'created_at', 'reason', 'by', 'automatic', 'violation'}
"""

# The ban policy is baked into the subject script (`subject_script`), so each call sends only
# what varies. KEYS: 1 ban hash, 2 score list, 3 ban-history list, 4.. one list per window.
# ARGV: 1 now, 2 check_ban, 3 score_always, 4 score_on_exceed, 5 ban reason, 6 actor,
#       7 violation type, 8 window count, then per window: mode, max, window ms.
# Returns one JSON string (one reply to parse): {now, status (0 ok, 1 already banned, 2 banned
# now), score, threshold, ban = [expires, created, reason, by, automatic, violation], windows =
# [exceeded, count, retry ms, ...]}; timestamps travel as strings, never as Lua floats.
# With a `once` marker (one more key after the windows, its TTL ms as the last argument) the
# answer is kept under the marker, and a later call with the same marker counts nothing and
# returns 'R' followed by the kept answer: a retried event counts once, atomically, in its slot.
_SUBJECT = """
local now = clock(ARGV[1])
local nwin = tonumber(ARGV[8])
local once = KEYS[4 + nwin]
if once then
  local prior = redis.call('GET', once)
  if prior then return 'R' .. prior end
end
local function finish(out)
  if once then redis.call('SET', once, out, 'NX', 'PX', ARGV[9 + nwin * 3]) end
  return out
end
if ARGV[2] == '1' then
  local b = redis.call('HMGET', KEYS[1], unpack(BAN_FIELDS))
  if b[1] and tonumber(b[1]) > now then
    return finish(cjson.encode({fmt(now), 1, 0, 0, {b[1], b[2], b[3], b[4], b[5], b[6] or ''}, {}}))
  end
end
local windows = {}
local scoring = false
for i = 1, nwin do
  local at = 8 + (i - 1) * 3
  local mode, max, w = ARGV[at + 1], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local key = KEYS[3 + i]
  purge(key, now - w)
  local n = redis.call('LLEN', key)
  local exceeded = 0
  if mode == 'hit' or mode == 'lease' then
    if n >= max then
      exceeded = 1
      scoring = true
    else
      redis.call('LPUSH', key, fmt(now))
      redis.call('PEXPIRE', key, w)
      n = n + 1
    end
  elseif mode == 'record' then
    redis.call('LPUSH', key, fmt(now))
    redis.call('LTRIM', key, 0, max - 1)
    redis.call('PEXPIRE', key, w)
    n = math.min(n + 1, max)
    if n >= max then exceeded = 1 end
  elseif mode == 'check' then
    if n >= max then exceeded = 1 end
  elseif mode == 'release' and n > 0 then
    redis.call('RPOP', key)
    n = n - 1
  elseif mode == 'uncount' then
    n = n - redis.call('LREM', key, 1, fmt(now))
  end
  local retry = 0
  if exceeded == 1 then retry = ts_of(redis.call('LINDEX', key, max - 1)) + w - now end
  windows[#windows + 1] = exceeded
  windows[#windows + 1] = n
  windows[#windows + 1] = retry
end
local add = tonumber(ARGV[3])
if scoring then add = add + tonumber(ARGV[4]) end
purge(KEYS[2], now - VWIN)
local score = 0
for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  score = score + tonumber(string.match(entry, ':(%d+)$'))
end
local status, threshold = 0, 0
local ban = {}
if add > 0 then
  redis.call('LPUSH', KEYS[2], fmt(now) .. ':' .. fmt(add))
  redis.call('PEXPIRE', KEYS[2], VWIN)
  score = score + add
  if score >= INTERVAL then
    threshold = 1
    redis.call('DEL', KEYS[2])
    if AUTO then
      purge(KEYS[3], now - ESC)
      local level = redis.call('LLEN', KEYS[3])
      local duration = math.floor(BASE * (FACTOR ^ level))
      if duration > MAXMS then duration = MAXMS end
      ban = {fmt(now + duration), fmt(now), ARGV[5], ARGV[6], '1', ARGV[7]}
      redis.call('DEL', KEYS[1])
      redis.call('HSET', KEYS[1], 'expires_at', ban[1], 'created_at', ban[2], 'reason', ban[3],
        'by', ban[4], 'automatic', ban[5], 'violation', ban[6])
      redis.call('PEXPIRE', KEYS[1], duration)
      redis.call('LPUSH', KEYS[3], fmt(now))
      redis.call('LTRIM', KEYS[3], 0, 63)
      redis.call('PEXPIRE', KEYS[3], ESC)
      status = 2
    end
  end
end
return finish(cjson.encode({fmt(now), status, score, threshold, ban, windows}))
"""


def subject_script(
    violation_window_ms: int,
    interval: int,
    automatic: bool,
    duration_ms: int,
    escalation_window_ms: int,
    escalation_factor: float,
    max_duration_ms: int,
) -> str:
    """The per-subject script with one ban policy's constants written in."""
    auto = "true" if automatic else "false"
    constants = (
        f"local VWIN, INTERVAL, AUTO = {int(violation_window_ms)}, {int(interval)}, {auto}\n"
        f"local BASE, ESC, FACTOR, MAXMS = {int(duration_ms)}, {int(escalation_window_ms)}, "
        f"{float(escalation_factor)!r}, {int(max_duration_ms)}\n"
    )
    return _PRELUDE + constants + _SUBJECT


# KEYS: 1 ban hash, 2 score list, 3 ban-history list
# ARGV: 1 now, 2 duration ms, 3 reason, 4 by, 5 escalation window ms
SET_BAN = (
    _PRELUDE
    + """
local now = clock(ARGV[1])
local duration = tonumber(ARGV[2])
local expires = fmt(now + duration)
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'expires_at', expires, 'created_at', fmt(now), 'reason', ARGV[3],
  'by', ARGV[4], 'automatic', '0', 'violation', '')
redis.call('PEXPIRE', KEYS[1], duration)
redis.call('LPUSH', KEYS[3], fmt(now))
redis.call('LTRIM', KEYS[3], 0, 63)
local esc = tonumber(ARGV[5])
if esc < duration then esc = duration end
redis.call('PEXPIRE', KEYS[3], esc)
return {now, expires}
"""
)

# KEYS: 1 ban hash, 2 score list.  ARGV: 1 now.  Returns {now, active, 6 ban fields}.
DELETE_BAN = (
    _PRELUDE
    + """
local now = clock(ARGV[1])
local b = redis.call('HMGET', KEYS[1], unpack(BAN_FIELDS))
redis.call('DEL', KEYS[1], KEYS[2])
if b[1] and tonumber(b[1]) > now then
  return {now, 1, b[1], b[2], b[3], b[4], b[5], b[6] or ''}
end
return {now, 0}
"""
)

# KEYS: 1 stream, 2 meta hash, 3 index (lex zset), 4 ban data hash, 5 expiry zset
# ARGV: 1 now, 2 action, 3 subject, 4 change json, 5 ban json, 6 expires_at, 7 max length,
#       8 a fresh epoch in case the store lost its data
# Returns {stream id, epoch}
_RECORD_BODY = """
local now = clock(ARGV[1])
redis.call('HSETNX', KEYS[2], 'epoch', ARGV[8])
for _, s in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', fmt(now), 'LIMIT', 0, 100)) do
  redis.call('ZREM', KEYS[3], s)
  redis.call('HDEL', KEYS[4], s)
  redis.call('ZREM', KEYS[5], s)
end
if ARGV[2] == 'ban' then
  redis.call('ZADD', KEYS[3], 0, ARGV[3])
  redis.call('HSET', KEYS[4], ARGV[3], ARGV[5])
  redis.call('ZADD', KEYS[5], ARGV[6], ARGV[3])
else
  redis.call('ZREM', KEYS[3], ARGV[3])
  redis.call('HDEL', KEYS[4], ARGV[3])
  redis.call('ZREM', KEYS[5], ARGV[3])
end
local id = redis.call('XADD', KEYS[1], '*', 'r', ARGV[4])
redis.call('HSET', KEYS[2], 'last', id)
local len = redis.call('XLEN', KEYS[1])
local max = tonumber(ARGV[7])
if len > max then
  local drop = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', len - max)
  redis.call('HSET', KEYS[2], 'trimmed', drop[#drop][1])
  redis.call('XTRIM', KEYS[1], 'MAXLEN', max)
end
return {id, redis.call('HGET', KEYS[2], 'epoch')}
"""
RECORD_CHANGE = _PRELUDE + _RECORD_BODY

# The same append, made idempotent for the cluster store, where it is a second call after the
# ban was written and may be retried (a timed-out attempt may still run later): a ban the index
# already holds exactly, or an unban of a subject the index does not hold, appends nothing.
# KEYS and ARGV as RECORD_CHANGE.  Returns {stream id or '', epoch}.
APPEND_CHANGE = (
    _PRELUDE
    + """
if ARGV[2] == 'ban' and redis.call('HGET', KEYS[4], ARGV[3]) == ARGV[5] then
  return {'', redis.call('HGET', KEYS[2], 'epoch') or ''}
end
if ARGV[2] ~= 'ban' and not redis.call('ZSCORE', KEYS[3], ARGV[3]) then
  return {'', redis.call('HGET', KEYS[2], 'epoch') or ''}
end
"""
    + _RECORD_BODY
)

# KEYS: 1 stream, 2 meta hash.  ARGV: 1 fresh epoch, 2 since stream id ('' = none), 3 count
# Returns {epoch, trimmed id, last id, entries}
READ_FEED = """
redis.call('HSETNX', KEYS[2], 'epoch', ARGV[1])
local m = redis.call('HMGET', KEYS[2], 'epoch', 'trimmed', 'last')
local entries = {}
if ARGV[2] ~= '' then
  entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+', 'COUNT', tonumber(ARGV[3]))
end
return {m[1], m[2] or '0-0', m[3] or '0-0', entries}
"""

# KEYS: 1 index (lex zset), 2 ban data hash.  ARGV: 1 now, 2 after ('' = start), 3 limit
# Returns {now, more, json...}
LIST_BANS = (
    _PRELUDE
    + """
local now = clock(ARGV[1])
local start = '-'
if ARGV[2] ~= '' then start = '(' .. ARGV[2] end
local limit = tonumber(ARGV[3])
local subjects = redis.call('ZRANGEBYLEX', KEYS[1], start, '+', 'LIMIT', 0, limit + 1)
local more = 0
if #subjects > limit then
  more = 1
  subjects[#subjects] = nil
end
local out = {now, more}
for _, s in ipairs(subjects) do
  out[#out + 1] = redis.call('HGET', KEYS[2], s) or ''
end
return out
"""
)


@dataclass(frozen=True)
class Script:
    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest())


SCRIPTS = {
    script.name: script
    for script in (
        Script("set_ban", SET_BAN),
        Script("delete_ban", DELETE_BAN),
        Script("record_change", RECORD_CHANGE),
        Script("read_feed", READ_FEED),
        Script("list_bans", LIST_BANS),
    )
}
