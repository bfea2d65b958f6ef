-- A worker puts a task it holds back in line, keeping its place (fair key): due now, or after a back-off.
-- ARGV: prefix, worker, token, id, now_ms, defer_ms, counted 0/1 (1: this start counts as a try),
--       hand-back 0/1 (1: our generation server failed; counted towards EASEL_MAX_TRIES hand-backs),
--       avoid_ms (other workers get the first chance for this long), idle stale ms.
-- Returns 1, or 0 if the lease was not ours.
local worker, token, id = ARGV[2], ARGV[3], ARGV[4]
local now, defer, avoid = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[9])
if redis.call('GET', IN_PROGRESS .. id) ~= token then return 0 end
redis.call('DEL', IN_PROGRESS .. id)
redis.call('ZREM', k('running'), id)
local meta = load_meta(id)
if not meta then return 1 end
if ARGV[7] == '0' then meta.tries = math.max(0, (meta.tries or 1) - 1) end
if ARGV[8] == '1' then meta.handbacks = (meta.handbacks or 0) + 1 end
if avoid > 0 then redis.call('HSET', k('avoid'), id, worker .. '|' .. (now + avoid)) end
meta.worker, meta.started_ms = nil, nil
save_meta(id, meta)
requeue(id, meta, now, defer, tonumber(ARGV[10]), worker)
return 1
