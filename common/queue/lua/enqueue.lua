-- Queue a job's tasks atomically: arq payloads, the waiting index, lanes, the per-user limit, fair keys.
-- ARGV: prefix, owner, now_ms, per-user limit, aging rate, boost_ms, payload ttl_ms, idle stale_ms,
--       then per task: id, cost_ms, arq payload, meta JSON (with its lane), lane requirements JSON.
-- Returns {1, queued before, place of each task...} or {-1, queued before} when over the per-user limit.
local owner, now, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local aging, boost, ttl, stale = tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local FIXED, PER = 8, 5
local n = (#ARGV - FIXED) / PER
local queued = redis.call('SCARD', k('user-tasks:' .. owner))
if queued + n > limit then return {-1, queued} end

-- Start-time fair queueing: the owner's next task starts at max(queue clock, owner clock) in virtual time.
local start = math.max(tonumber(redis.call('GET', k('vclock')) or '0'),
                       tonumber(redis.call('HGET', k('user-clock'), owner) or '0'))
local shift = aging * (now - EPOCH) - boost
local new_lane = false
local ids = {}
for i = 1, n do
  local a = FIXED + (i - 1) * PER
  local id, cost = ARGV[a + 1], tonumber(ARGV[a + 2])
  local meta = cjson.decode(ARGV[a + 4])
  meta.vstart, meta.key = start, start + shift
  redis.call('PSETEX', JOB .. id, ttl, ARGV[a + 3])
  redis.call('ZADD', k('waiting'), meta.key, id)
  if redis.call('HSETNX', k('lanes'), meta.lane, ARGV[a + 5]) == 1 then
    redis.call('INCR', k('lanes-version'))
    new_lane = true
  end
  lane_add(id, meta)
  save_meta(id, meta)
  redis.call('SADD', k('user-tasks:' .. owner), id)
  wake_one(meta.lane, now, stale, nil)  -- one idle worker per task: as many as there is work, no herd
  ids[i] = id
  start = start + cost
end
redis.call('HSET', k('user-clock'), owner, start)
if new_lane then redis.call('PUBLISH', k('broadcast'), '{"type":"lanes"}') end
local out = {1, queued}
for i = 1, n do out[#out + 1] = redis.call('ZRANK', k('waiting'), ids[i]) + 1 end
return out
