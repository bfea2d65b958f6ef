-- Cancel a task: a waiting one is removed and never runs; a running one is flagged and its worker told.
-- ARGV: prefix, id, result data (arq's failed result), result ttl_ms, control message JSON.
-- Returns 'removed', 'running' (its worker was told to interrupt it) or 'gone' (finished or unknown).
local id = ARGV[2]
local holder = redis.call('GET', IN_PROGRESS .. id)
if holder then
  redis.call('SET', k('cancel:' .. id), '1', 'EX', 86400)
  local worker = string.match(holder, '^(.*):[^:]*$') or holder
  redis.call('PUBLISH', k('inbox:' .. worker), ARGV[5])
  return 'running'
end
-- waiting, deferred, or running under a lapsed lease (its worker can no longer finish it)
if not (redis.call('ZSCORE', k('waiting'), id) or redis.call('ZSCORE', k('running'), id)) then return 'gone' end
redis.call('SET', RESULT .. id, ARGV[3], 'PX', ARGV[4])
forget(id, load_meta(id))
return 'removed'
