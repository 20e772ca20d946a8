-- Removes a tenant, its key-owner keys and its checkpoint; its audit log and usage stay.
-- KEYS: record, tenant index (zset), the tenant's key set, checkpoint. ARGV: tenant id.
-- Returns 1, or 0 when the tenant does not exist (nothing written).
local record, index, key_set, checkpoint = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', record) == 0 then
  return 0
end
for _, checked in ipairs({{index, 'zset'}, {key_set, 'set'}}) do
  local found = redis.call('TYPE', checked[1]).ok
  if found ~= 'none' and found ~= checked[2] then
    return redis.error_reply('CORRUPT ' .. checked[1] .. ' is a ' .. found .. ', not a ' .. checked[2])
  end
end
for _, old in ipairs(redis.call('SMEMBERS', key_set)) do
  redis.call('DEL', old)
end
redis.call('DEL', record, key_set, checkpoint)
redis.call('ZREM', index, ARGV[1])
return 1
