-- Shared by every queue script (prepended to each). Key names mirror common/queue/keys.py; ARGV[1] is the prefix.
-- The scripts build key names from the prefix, so Easel needs a standalone (non-cluster) Redis-protocol server.
local P = ARGV[1]
local JOB, RESULT, IN_PROGRESS = 'arq:job:', 'arq:result:', 'arq:in-progress:'
local EPOCH = 1767225600000  -- common.queue.fairness.EPOCH_MS: keeps sums of enqueue times small

local function k(name) return P .. name end

local function load_meta(id)
  local raw = redis.call('HGET', k('meta'), id)
  if raw then return cjson.decode(raw) end
  return nil
end

local function save_meta(id, meta) redis.call('HSET', k('meta'), id, cjson.encode(meta)) end

-- A due waiting task enters its lane (and the lane's demand statistics).
local function lane_add(id, meta)
  if redis.call('ZADD', k('lane:' .. meta.lane), meta.key, id) == 1 then
    redis.call('HINCRBY', k('lane-stats'), meta.lane .. ':n', 1)
    redis.call('HINCRBY', k('lane-stats'), meta.lane .. ':t', meta.enqueue_ms - EPOCH)
  end
end

local function lane_remove(id, meta)
  if redis.call('ZREM', k('lane:' .. meta.lane), id) == 1 then
    redis.call('HINCRBY', k('lane-stats'), meta.lane .. ':n', -1)
    redis.call('HINCRBY', k('lane-stats'), meta.lane .. ':t', EPOCH - meta.enqueue_ms)
  end
end

-- Remove a worker from every idle set it registered in.
local function forget_idle(worker)
  local raw = redis.call('HGET', k('idle-lanes'), worker)
  if not raw then return end
  for _, name in ipairs(cjson.decode(raw)) do redis.call('ZREM', k(name), worker) end
  redis.call('HDEL', k('idle-lanes'), worker)
end

-- Wake one idle worker that can serve `lane` (one with its checkpoint loaded first); entries older than
-- `stale_ms` belong to workers that stopped polling and are dropped. Returns the worker's name or false.
local function wake_one(lane, now, stale_ms, except)
  for _, name in ipairs({'idle-warm:' .. lane, 'idle:' .. lane}) do
    while true do
      local top = redis.call('ZPOPMAX', k(name))
      if #top == 0 then break end
      local worker, seen = top[1], tonumber(top[2])
      if worker ~= except and seen >= now - stale_ms then
        forget_idle(worker)
        redis.call('PUBLISH', k('inbox:' .. worker), '{"type":"wake"}')
        return worker
      end
    end
  end
  return false
end

-- Put a task back in line with its fair key: due now (its lane, and wake a worker) or after `defer_ms`.
local function requeue(id, meta, now, defer_ms, stale_ms, except)
  redis.call('ZADD', k('waiting'), meta.key, id)
  if defer_ms > 0 then
    redis.call('ZADD', k('delayed'), now + defer_ms, id)
  else
    lane_add(id, meta)
    wake_one(meta.lane, now, stale_ms, except)
  end
end

-- Forget a task that left the queue for good (finished, failed or cancelled).
local function forget(id, meta)
  redis.call('ZREM', k('waiting'), id)
  redis.call('ZREM', k('delayed'), id)
  redis.call('ZREM', k('running'), id)
  if meta then
    lane_remove(id, meta)
    redis.call('SREM', k('user-tasks:' .. meta.owner), id)
  end
  redis.call('HDEL', k('meta'), id)
  redis.call('HDEL', k('passed'), id)
  redis.call('HDEL', k('avoid'), id)
  redis.call('DEL', JOB .. id, IN_PROGRESS .. id, k('cancel:' .. id))
end
