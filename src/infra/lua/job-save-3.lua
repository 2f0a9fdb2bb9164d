-- Save the rebalance job, only while the caller holds the coordinator lease.
-- KEYS[1] lease, KEYS[2] job record, KEYS[3] history list
-- ARGV[1] lease owner ('' = any caller), ARGV[2] job (JSON),
-- ARGV[3] '1' when the job is final (it is kept in the history too)
-- Returns 1 when saved, 0 when another owner holds the lease.
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] == '1' then
  redis.call('LPUSH', KEYS[3], ARGV[2])
  redis.call('LTRIM', KEYS[3], 0, 19)
end
return 1
