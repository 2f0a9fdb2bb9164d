-- Store a new rebalance job unless one is still active.
-- KEYS[1] job record
-- ARGV[1] the new job (JSON)
-- Returns false when stored, else the active job (JSON).
local cur = redis.call('GET', KEYS[1])
if cur then
  local st = cjson.decode(cur)['state']
  if st ~= 'done' and st ~= 'cancelled' and st ~= 'failed' then return cur end
end
redis.call('SET', KEYS[1], ARGV[1])
return false
