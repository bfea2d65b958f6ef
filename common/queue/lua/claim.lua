-- A worker picks and claims, atomically, the task it should run next; or registers as idle in its lanes.
-- ARGV: prefix, worker, token, now_ms, lease_ms, affinity 0/1, switch margin, max pass-over ms, warm stale ms,
--       idle stale ms, fresh ms, then the lanes it can serve as pairs: lane, warm 0/1 (its checkpoint is loaded).
-- Returns {0, lanes version} or {1, lanes version, id, meta JSON, arq payload or '', cancel requested 0/1}.
-- Cost: a few commands per lane the worker serves; nothing here grows with the queue or the number of workers.
-- Only the chosen task's metadata is decoded (JSON costs more than a command).
local worker, token, now, lease = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local affinity, margin, max_pass = ARGV[6] == '1', tonumber(ARGV[7]), tonumber(ARGV[8])
local warm_stale, idle_stale, fresh = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local version = tonumber(redis.call('GET', k('lanes-version')) or '0')
local lanes, warm = {}, {}
for i = 12, #ARGV, 2 do
  lanes[#lanes + 1] = ARGV[i]
  warm[ARGV[i]] = ARGV[i + 1] == '1'
end

-- 1. Leases that lapsed (a worker died or lost Redis): their tasks go back in line with their fair keys.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('running'), '-inf', now, 'LIMIT', 0, 10)) do
  local left = redis.call('PTTL', IN_PROGRESS .. id)
  if left > 0 then
    redis.call('ZADD', k('running'), now + left, id)
  else
    redis.call('ZREM', k('running'), id)
    local meta = load_meta(id)
    if meta then requeue(id, meta, now, 0, idle_stale, worker) end
  end
end

-- 2. Deferred retries that are due enter their lanes.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', k('delayed'), '-inf', now, 'LIMIT', 0, 20)) do
  redis.call('ZREM', k('delayed'), id)
  local meta = load_meta(id)
  if meta then lane_add(id, meta) end
end

-- 3. The head of each lane this worker serves (skipping a task that just failed here, for a second).
local cands = {}
for _, lane in ipairs(lanes) do
  local head = redis.call('ZRANGE', k('lane:' .. lane), 0, 1, 'WITHSCORES')
  for j = 1, #head, 2 do
    local id = head[j]
    local avoid = redis.call('HGET', k('avoid'), id)  -- "<worker>|<until ms>"
    local who, till = nil, 0
    if avoid then who, till = string.match(avoid, '^(.*)|(%d+)$') end
    if not (who == worker and now < tonumber(till)) then
      cands[#cands + 1] = {lane = lane, id = id, key = tonumber(head[j + 1]), warm = warm[lane]}
      break
    end
  end
end

if #cands == 0 then
  -- Idle: register in each lane's idle set so the next enqueue there wakes this worker (no lost wake-up: the
  -- check and the registration are one atomic step). Unchanged registrations only refresh their scores.
  local names = {}
  for _, lane in ipairs(lanes) do names[#names + 1] = (warm[lane] and 'idle-warm:' or 'idle:') .. lane end
  local encoded = #names > 0 and cjson.encode(names) or '[]'
  if redis.call('HGET', k('idle-lanes'), worker) ~= encoded then
    forget_idle(worker)
    if #names > 0 then redis.call('HSET', k('idle-lanes'), worker, encoded) end
  end
  for _, name in ipairs(names) do redis.call('ZADD', k(name), now, worker) end
  return {0, version}
end

-- 4. Choose: fair order, unless model affinity says stay (or switch), bounded by the pass-over limit.
local first = cands[1]
for _, c in ipairs(cands) do if c.key < first.key then first = c end end
local chosen = first
if affinity and #cands > 1 then
  local overdue = nil
  for _, c in ipairs(cands) do
    local since = redis.call('HGET', k('passed'), c.id)
    if since and now - tonumber(since) > max_pass and (not overdue or c.key < overdue.key) then overdue = c end
  end
  if overdue then
    chosen = overdue
  else
    -- demand = waiting tasks x how long they waited, per worker that would serve the lane
    local best, best_warm = nil, nil
    for _, c in ipairs(cands) do
      local stats = redis.call('HMGET', k('lane-stats'), c.lane .. ':n', c.lane .. ':t')
      local n, t = tonumber(stats[1] or '0'), tonumber(stats[2] or '0')
      local demand = math.max(n * fresh, n * (now - EPOCH) - t)
      local holders = redis.call('ZCOUNT', k('warm:' .. c.lane), now - warm_stale, '+inf')
      if redis.call('ZSCORE', k('warm:' .. c.lane), worker) then holders = holders - 1 end
      c.share = demand / (math.max(holders, 0) + 1)
      if not best or c.share > best.share then best = c end
      if c.warm and (not best_warm or c.share > best_warm.share) then best_warm = c end
    end
    if best_warm and best_warm.share * margin >= best.share then chosen = best_warm else chosen = best end
  end
  for _, c in ipairs(cands) do
    if c.key < chosen.key then redis.call('HSETNX', k('passed'), c.id, now) end
  end
end

-- 5. Claim it: out of the waiting index, a lease with this worker's token, one more start counted.
local c, meta = chosen, load_meta(chosen.id)
if not meta then  -- an index entry without its task (cannot happen through these scripts): drop it, try again
  redis.call('ZREM', k('lane:' .. c.lane), c.id)
  redis.call('ZREM', k('waiting'), c.id)
  return {0, version}
end
lane_remove(c.id, meta)
redis.call('ZREM', k('waiting'), c.id)
redis.call('SET', IN_PROGRESS .. c.id, token, 'PX', lease)
redis.call('ZADD', k('running'), now + lease, c.id)
redis.call('HDEL', k('passed'), c.id)
redis.call('HDEL', k('avoid'), c.id)
meta.tries = (meta.tries or 0) + 1
meta.worker, meta.started_ms = worker, now
save_meta(c.id, meta)
if meta.vstart > tonumber(redis.call('GET', k('vclock')) or '0') then redis.call('SET', k('vclock'), meta.vstart) end
forget_idle(worker)
local cancelled = redis.call('EXISTS', k('cancel:' .. c.id))
return {1, version, c.id, cjson.encode(meta), redis.call('GET', JOB .. c.id) or '', cancelled}
