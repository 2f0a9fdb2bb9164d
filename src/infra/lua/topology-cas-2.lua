-- Compare-and-set of the topology record; publishes the new record.
-- KEYS[1] topology record, KEYS[2] change channel
-- ARGV[1] the epoch the caller read, ARGV[2] the new record (JSON)
-- Refuses unless the stored epoch equals the expected one and the new
-- record's epoch is exactly one more: epochs never go backwards or skip.
-- Returns {1, new epoch} when written, {0, stored epoch} when the epoch moved,
-- {-1, stored epoch} when the new epoch is not the stored one plus one.
local cur = redis.call('GET', KEYS[1])
local curEpoch = 0
if cur then curEpoch = tonumber(cjson.decode(cur)['epoch']) end
if curEpoch ~= tonumber(ARGV[1]) then return {0, curEpoch} end
local nextEpoch = tonumber(cjson.decode(ARGV[2])['epoch'])
if nextEpoch ~= curEpoch + 1 then return {-1, curEpoch} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return {1, nextEpoch}
