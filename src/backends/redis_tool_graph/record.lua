-- Records one served query of a tenant in one step, so that nodes recording at the same time
-- never lose a count. KEYS: the tenant's served list, its recorded counter, the set of tools, the
-- co-usage version, then for the i-th tool its usage hash (KEYS[3 + 2i]) and its co-occurrence
-- hash (KEYS[4 + 2i]). ARGV: the tenant id, the served query (JSON), how many of the tenant's
-- queries to keep, then the tool ids (distinct, the i-th at ARGV[3 + i]).
-- Returns the query's number in the tenant's history.
local tenant, kept = ARGV[1], tonumber(ARGV[3])
local tools = #ARGV - 3
local number = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], number .. ' ' .. ARGV[2])
redis.call('LTRIM', KEYS[1], -kept, -1)
for i = 1, tools do
  redis.call('SADD', KEYS[3], ARGV[3 + i])
  redis.call('HINCRBY', KEYS[3 + 2 * i], tenant, 1)
  for j = 1, tools do
    if j ~= i then
      redis.call('HINCRBY', KEYS[4 + 2 * i], tenant .. ' ' .. ARGV[3 + j], 1)
    end
  end
end
redis.call('INCR', KEYS[4])
return number
