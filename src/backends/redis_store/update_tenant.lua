-- Replaces an existing tenant and re-indexes its keys: the key-owner keys of its old keys
-- (remembered in its key set) are removed, those of the new keys written.
-- KEYS: record, the tenant's key set, then one key-owner key per API key.
-- ARGV: record JSON, then one key-owner JSON per API key.
-- Returns 1, or 0 when the tenant does not exist (nothing written).
local record, key_set = KEYS[1], KEYS[2]
if redis.call('EXISTS', record) == 0 then
  return 0
end
local found = redis.call('TYPE', key_set).ok
if found ~= 'none' and found ~= 'set' then
  return redis.error_reply('CORRUPT ' .. key_set .. ' is a ' .. found .. ', not a set')
end
-- The old key-owner keys are named by data, not declared in KEYS: fine on one Redis (see
-- redis_store.rs on why this adapter does not target Redis Cluster).
for _, old in ipairs(redis.call('SMEMBERS', key_set)) do
  redis.call('DEL', old)
end
redis.call('DEL', key_set)
redis.call('SET', record, ARGV[1])
for i = 3, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i - 1])
  redis.call('SADD', key_set, KEYS[i])
end
return 1
