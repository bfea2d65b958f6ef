-- Renew a worker's leases, and say it is alive in the lanes whose checkpoint it has loaded (affinity's holders).
-- ARGV: prefix, worker, token, now_ms, lease_ms, warm JSON, task ids...
-- A lease that lapsed while Redis was unreachable is taken back if no other worker has started the task since.
-- Returns the ids whose lease is lost for good (another worker runs them, or they were cancelled or finished).
local worker, token, now, lease = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local lost = {}
for i = 7, #ARGV do
  local id = ARGV[i]
  local holder = redis.call('GET', IN_PROGRESS .. id)
  local meta = nil
  if not holder then meta = load_meta(id) end
  if holder == token then
    redis.call('PEXPIRE', IN_PROGRESS .. id, lease)
    redis.call('ZADD', k('running'), now + lease, id)
  elseif meta and (redis.call('ZSCORE', k('running'), id) or redis.call('ZSCORE', k('waiting'), id)) then
    lane_remove(id, meta)
    redis.call('ZREM', k('waiting'), id)
    redis.call('ZREM', k('delayed'), id)
    redis.call('SET', IN_PROGRESS .. id, token, 'PX', lease)
    redis.call('ZADD', k('running'), now + lease, id)
    meta.worker = worker
    save_meta(id, meta)
  else
    lost[#lost + 1] = id
  end
end
for _, lane in ipairs(cjson.decode(ARGV[6])) do redis.call('ZADD', k('warm:' .. lane), now, worker) end
return lost
