"""Lua scripts that keep the queue's several keys consistent (each runs atomically in Redis).

Key layout (see :mod:`common.keys`): arq's own ``arq:job:<id>`` payload and ``<prefix>queue`` sorted set (score =
run-at time, arq's meaning: a retry is deferred by raising it) plus Easel's ``order`` (fair key: which task first),
``meta`` (what pickers need to know about each task), per-owner task sets, and the virtual clocks.

The in-progress key holds the claiming worker's *token* and lives only as long as its lease: a worker that stops
renewing it loses the task, and a worker that lost it can no longer finish it (fenced finish), so a task re-run
elsewhere yields exactly one result.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

# Removes a task from every Easel index (queue, order, meta, passed, avoid, its owner's set).
_FORGET = """
local function forget(queue, order, meta, passed, avoid, id, user_prefix)
  redis.call('ZREM', queue, id)
  redis.call('ZREM', order, id)
  local m = redis.call('HGET', meta, id)
  if m then
    redis.call('SREM', user_prefix .. cjson.decode(m)['owner'], id)
  end
  redis.call('HDEL', meta, id)
  redis.call('HDEL', passed, id)
  redis.call('HDEL', avoid, id)
end
"""

ENQUEUE = """
-- KEYS: order, meta, user_clocks, vclock, user_tasks, queue, job keys...
-- ARGV: owner, now_ms, limit, aging, boost_ms, epoch_ms, expires_ms, wake_channel,
--       then per task: id, cost_ms, job, meta
local fixed = 6
local n = #KEYS - fixed
local queued = redis.call('SCARD', KEYS[5])
if queued + n > tonumber(ARGV[3]) then
  return {-1, queued}
end
local now = tonumber(ARGV[2])
local vclock = tonumber(redis.call('GET', KEYS[4]) or '0')
local start = math.max(vclock, tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0'))
local shift = tonumber(ARGV[4]) * (now - tonumber(ARGV[6])) - tonumber(ARGV[5])
for i = 1, n do
  local a = 8 + (i - 1) * 4
  local id, cost = ARGV[a + 1], tonumber(ARGV[a + 2])
  local meta = cjson.decode(ARGV[a + 4])
  meta['vstart'] = start
  redis.call('PSETEX', KEYS[fixed + i], ARGV[7], ARGV[a + 3])
  redis.call('ZADD', KEYS[6], now, id)
  redis.call('ZADD', KEYS[1], start + shift, id)
  redis.call('HSET', KEYS[2], id, cjson.encode(meta))
  redis.call('SADD', KEYS[5], id)
  start = start + cost
end
redis.call('HSET', KEYS[3], ARGV[1], start)
redis.call('PUBLISH', ARGV[8], '1')
return {1, queued}
"""

CANDIDATES = """
-- KEYS: order, meta, queue, passed, avoid. ARGV: count, in-progress key prefix
-- Returns flat [id, fair key, meta, queue score or '', running 0/1, passed-since or '', worker to avoid or '']
-- for the first `count` tasks in fair order.
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  local id = ids[i]
  out[#out + 1] = id
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  out[#out + 1] = redis.call('ZSCORE', KEYS[3], id) or ''
  out[#out + 1] = redis.call('EXISTS', ARGV[2] .. id)
  out[#out + 1] = redis.call('HGET', KEYS[4], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[5], id) or ''
end
return out
"""

CLAIM = """
-- KEYS: queue, in-progress key, vclock. ARGV: id, now_ms, token, lease_ms, vstart
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
if tonumber(ARGV[5]) > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], ARGV[5])
end
return 1
"""

RENEW = """
-- KEYS: in-progress keys. ARGV: token, lease_ms. Returns how many leases were still ours.
local kept = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    kept = kept + 1
  end
end
return kept
"""

FINISH = _FORGET + """
-- KEYS: in-progress, queue, result, retry, job, order, meta, cancel flag, passed, avoid
-- ARGV: token, id, finish 0/1, result data, result px (0 = keep), incr score or '', user-task key prefix, wake channel
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '1' then
  if ARGV[4] ~= '' then
    if tonumber(ARGV[5]) > 0 then
      redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
    else
      redis.call('SET', KEYS[3], ARGV[4])
    end
  end
  redis.call('DEL', KEYS[4], KEYS[5], KEYS[8])
  forget(KEYS[2], KEYS[6], KEYS[7], KEYS[9], KEYS[10], ARGV[2], ARGV[7])
else
  if ARGV[6] ~= '' then
    redis.call('ZINCRBY', KEYS[2], ARGV[6], ARGV[2])
  end
  redis.call('PUBLISH', ARGV[8], '1')  -- back in the queue: let idle workers see it
end
redis.call('DEL', KEYS[1])
return 1
"""

CANCEL = _FORGET + """
-- KEYS: queue, in-progress, order, meta, job, result, cancel flag, retry, passed, avoid
-- ARGV: id, result data, result px, user-task key prefix, control channel, control message
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('SET', KEYS[7], '1', 'EX', 86400)
  redis.call('PUBLISH', ARGV[5], ARGV[6])
  return 'running'
end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 'gone' end
redis.call('SET', KEYS[6], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[5], KEYS[8])
forget(KEYS[1], KEYS[3], KEYS[4], KEYS[9], KEYS[10], ARGV[1], ARGV[4])
return 'removed'
"""


CANDIDATE_FIELDS = 7  # values per task in a CANDIDATES reply


class Scripts:
    """The scripts registered on one Redis connection pool (EVALSHA, loaded on first use)."""

    def __init__(self, redis: Redis) -> None:
        self.enqueue: AsyncScript = redis.register_script(ENQUEUE)
        self.candidates: AsyncScript = redis.register_script(CANDIDATES)
        self.claim: AsyncScript = redis.register_script(CLAIM)
        self.renew: AsyncScript = redis.register_script(RENEW)
        self.finish: AsyncScript = redis.register_script(FINISH)
        self.cancel: AsyncScript = redis.register_script(CANCEL)


def text(value: Any) -> str:
    """A Redis reply as str (replies are bytes unless the client decodes)."""
    return value.decode() if isinstance(value, bytes) else str(value)
