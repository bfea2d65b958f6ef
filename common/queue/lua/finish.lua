-- A worker ends a task it holds: store arq's result and forget the task. Fenced on the lease token, so a worker
-- that lost its lease (the task was re-run elsewhere) cannot store a second result.
-- ARGV: prefix, token, id, result data, result ttl_ms. Returns 1 if stored, 0 if the lease was not ours.
local token, id = ARGV[2], ARGV[3]
if redis.call('GET', IN_PROGRESS .. id) ~= token then return 0 end
redis.call('SET', RESULT .. id, ARGV[4], 'PX', ARGV[5])
forget(id, load_meta(id))
return 1
