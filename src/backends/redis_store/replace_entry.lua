-- Writes or removes one entry of a collection only if it still holds the expected value.
-- KEYS: the collection's hash. ARGV: entry name, whether a value is expected ('1') or absence
-- ('0'), the expected value, whether to write ('1') or remove ('0'), the new value (unused
-- values are empty). Values are compared as raw bytes (Lua strings are byte strings).
-- Returns 1 when written or removed, 0 when the entry holds something else (nothing written).
local collection, name = KEYS[1], ARGV[1]
-- false when absent; a non-hash key fails here, before anything is written.
local held = redis.call('HGET', collection, name)
if ARGV[2] == '1' then
  if held ~= ARGV[3] then
    return 0
  end
elseif held then
  return 0
end
if ARGV[4] == '1' then
  redis.call('HSET', collection, name, ARGV[5])
else
  -- Removing the last field removes the hash, as HDEL in delete_entry does.
  redis.call('HDEL', collection, name)
end
return 1
