-- A tenant's served queries numbered above ARGV[1], the newest ARGV[2] of them, oldest first, in
-- one step: the number of the newest and the list are read together. KEYS: the tenant's served
-- list, its recorded counter. Each entry is '<number> <served query as JSON>'.
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local wanted = math.min(last - tonumber(ARGV[1]), tonumber(ARGV[2]))
if wanted <= 0 then
  return {}
end
return redis.call('LRANGE', KEYS[1], -wanted, -1)
