-- Saves a new tenant and indexes its keys, unless the id is taken.
-- KEYS: record, tenant index (zset), the tenant's key set, then one key-owner key per API key.
-- ARGV: tenant id, record JSON, then one key-owner JSON per API key.
-- Returns 1, or 0 when the tenant exists (nothing written).
local record, index, key_set = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', record) == 1 then
  return 0
end
-- Checked before the first write: a script that fails half way keeps what it wrote.
for _, checked in ipairs({{index, 'zset'}, {key_set, 'set'}}) do
  local found = redis.call('TYPE', checked[1]).ok
  if found ~= 'none' and found ~= checked[2] then
    return redis.error_reply('CORRUPT ' .. checked[1] .. ' is a ' .. found .. ', not a ' .. checked[2])
  end
end
redis.call('SET', record, ARGV[2])
redis.call('ZADD', index, 0, ARGV[1])
redis.call('DEL', key_set)
for i = 4, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i - 1])
  redis.call('SADD', key_set, KEYS[i])
end
return 1
