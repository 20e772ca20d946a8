-- Commits one batch: appends audit events, adds usage, saves checkpoints of existing tenants.
-- Everything is read and checked before the first write, because a script that fails half way
-- keeps what it wrote; once writing starts, nothing it does can fail on our data.
--
-- KEYS and ARGV are read in order, item by item (see `commit` in redis_store.rs):
--   KEYS: audit sequence; per event: its tenant's audit log; per usage delta: day hash, day
--         index, month hash; per checkpoint: the tenant record, the checkpoint.
--   ARGV: event count, delta count, checkpoint count, the gauge field (merged with max);
--         per event: 8-byte time prefix followed by the encoded event;
--         per delta: day score, day member, gauge value, pair count, then (field, increment) pairs;
--         per checkpoint: its JSON;
--         last: how many seconds to remember the batch as applied, 0 when it has no id; with an id,
--         the last KEY marks the batch applied, and a batch found marked is not applied again
--         (its commit is retried when the answer to the first was lost).
-- Returns the number of events appended.
local remember = tonumber(ARGV[#ARGV])
local committed = remember > 0 and KEYS[#KEYS] or nil
if committed and redis.call('EXISTS', committed) == 1 then return 0 end
local k, a = 0, 0
local function next_key() k = k + 1; return KEYS[k] end
local function next_arg() a = a + 1; return ARGV[a] end
local function corrupt(what) return redis.error_reply('CORRUPT ' .. what) end
local function has_type(key, want)
  local found = redis.call('TYPE', key).ok
  return found == 'none' or found == want
end
-- A stored counter: absent, or decimal digits (what HINCRBY can add to).
local function is_counter(value)
  return value == false or string.match(value, '^%d+$') ~= nil
end

local seq_key = next_key()
local n_events, n_deltas, n_checkpoints = tonumber(next_arg()), tonumber(next_arg()), tonumber(next_arg())
local gauge_field = next_arg()

local events = {}
for i = 1, n_events do
  events[i] = { log = next_key(), entry = next_arg() }
end
local deltas = {}
for i = 1, n_deltas do
  local delta = { day = next_key(), days = next_key(), month = next_key() }
  delta.score, delta.member, delta.gauge = next_arg(), next_arg(), next_arg()
  delta.adds = {}
  for j = 1, tonumber(next_arg()) do
    delta.adds[j] = { field = next_arg(), by = next_arg() }
  end
  deltas[i] = delta
end
local checkpoints = {}
for i = 1, n_checkpoints do
  checkpoints[i] = { record = next_key(), key = next_key(), json = next_arg() }
end

-- Check.
if n_events > 0 then
  local seq = redis.call('GET', seq_key)
  if not is_counter(seq) then return corrupt(seq_key .. ' is not a counter') end
end
for _, event in ipairs(events) do
  if not has_type(event.log, 'zset') then return corrupt(event.log .. ' is not a sorted set') end
end
for _, delta in ipairs(deltas) do
  if not has_type(delta.days, 'zset') then return corrupt(delta.days .. ' is not a sorted set') end
  for _, hash in ipairs({ delta.day, delta.month }) do
    if not has_type(hash, 'hash') then return corrupt(hash .. ' is not a hash') end
    if not is_counter(redis.call('HGET', hash, gauge_field)) then
      return corrupt(hash .. ' field ' .. gauge_field .. ' is not a counter')
    end
    for _, add in ipairs(delta.adds) do
      if not is_counter(redis.call('HGET', hash, add.field)) then
        return corrupt(hash .. ' field ' .. add.field .. ' is not a counter')
      end
    end
  end
end

-- Write.
if n_events > 0 then
  -- Numbers follow the last one ever handed out, so they are never reused and events with
  -- equal timestamps keep commit order. Exact as long as they stay below 2^53.
  local seq = redis.call('INCRBY', seq_key, n_events) - n_events
  for _, event in ipairs(events) do
    seq = seq + 1
    local position = struct.pack('>I4I4', math.floor(seq / 4294967296), seq % 4294967296)
    redis.call('ZADD', event.log, 0, string.sub(event.entry, 1, 8) .. position .. string.sub(event.entry, 9))
  end
end
for _, delta in ipairs(deltas) do
  redis.call('ZADD', delta.days, delta.score, delta.member)
  for _, hash in ipairs({ delta.day, delta.month }) do
    for _, add in ipairs(delta.adds) do
      redis.call('HINCRBY', hash, add.field, add.by)
    end
    local peak = tonumber(redis.call('HGET', hash, gauge_field) or '0')
    if tonumber(delta.gauge) > peak then
      redis.call('HSET', hash, gauge_field, delta.gauge)
    end
  end
end
-- A late checkpoint of a deleted tenant must not hand its windows to a tenant created later
-- under the same id.
for _, checkpoint in ipairs(checkpoints) do
  if redis.call('EXISTS', checkpoint.record) == 1 then
    redis.call('SET', checkpoint.key, checkpoint.json)
  end
end
if committed then redis.call('SET', committed, '1', 'EX', remember) end
return n_events
