-- Commits one batch: appends audit events, adds usage, saves checkpoints of existing tenants
-- merged over the stored ones (per window the later instance, of one instance the larger count:
-- `Checkpoint::merged_over`), so a stale checkpoint never lowers the counts.
-- Everything is read and checked before the first write, because a script that fails half way
-- keeps what it wrote; once writing starts, nothing it does can fail on our data.
--
-- KEYS and ARGV are read in order, item by item (see `commit` in redis_store.rs):
--   KEYS: audit sequence; per event: its tenant's audit log; per usage delta: day hash, day
--         index, month hash; per checkpoint: the tenant record, the checkpoint.
--   ARGV: event count, delta count, checkpoint count, the gauge field (merged with max);
--         per event: 8-byte time prefix followed by the encoded event, then, when it has an id
--         (an event two nodes may both record), the 8-byte position its id gives it, else an
--         empty string (it takes the next sequence number); an event with an id is skipped when
--         its log holds an entry at its position already (the other node's record of it);
--         per delta: day score, day member, gauge value, pair count, then (field, increment) pairs;
--         per checkpoint: start and count of its minute, hour and day windows (six numbers);
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
local n_numbered = 0
for i = 1, n_events do
  events[i] = { log = next_key(), entry = next_arg(), position = next_arg() }
  if events[i].position == '' then n_numbered = n_numbered + 1 end
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
  local checkpoint = { record = next_key(), key = next_key(), windows = {} }
  for w = 1, 3 do
    checkpoint.windows[w] = { start = tonumber(next_arg()), count = tonumber(next_arg()) }
  end
  checkpoints[i] = checkpoint
end

-- Check.
if n_numbered > 0 then
  local seq = redis.call('GET', seq_key)
  if not is_counter(seq) then return corrupt(seq_key .. ' is not a counter') end
end
for _, event in ipairs(events) do
  if not has_type(event.log, 'zset') then return corrupt(event.log .. ' is not a sorted set') end
end
for _, checkpoint in ipairs(checkpoints) do
  if not has_type(checkpoint.key, 'string') then return corrupt(checkpoint.key .. ' is not a string') end
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
-- Whether `log` holds an entry at the 16-byte position `at` (time, then number).
local function recorded(log, at)
  local found = redis.call('ZRANGEBYLEX', log, '[' .. at, '+', 'LIMIT', 0, 1)[1]
  return found ~= nil and string.sub(found, 1, 16) == at
end
if n_events > 0 then
  -- Numbers follow the last one ever handed out, so they are never reused and events with
  -- equal timestamps keep commit order. Exact as long as they stay below 2^53.
  local seq = 0
  if n_numbered > 0 then seq = redis.call('INCRBY', seq_key, n_numbered) - n_numbered end
  for _, event in ipairs(events) do
    local at = string.sub(event.entry, 1, 8)
    if event.position == '' then
      seq = seq + 1
      at = at .. struct.pack('>I4I4', math.floor(seq / 4294967296), seq % 4294967296)
    else
      at = at .. event.position
    end
    if event.position == '' or not recorded(event.log, at) then
      redis.call('ZADD', event.log, 0, at .. string.sub(event.entry, 9))
    end
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
-- The stored windows, or nil when there are none or they are unreadable (then replaced).
local function stored_windows(key)
  local json = redis.call('GET', key)
  if not json then return nil end
  local ok, decoded = pcall(cjson.decode, json)
  if not ok or type(decoded) ~= 'table' or type(decoded.windows) ~= 'table' then return nil end
  return decoded.windows
end
local function later(stored, new)
  if type(stored) ~= 'table' or type(stored.start) ~= 'number' or type(stored.count) ~= 'number' then
    return new
  end
  if stored.start > new.start or (stored.start == new.start and stored.count > new.count) then return stored end
  return new
end
-- A late checkpoint of a deleted tenant must not hand its windows to a tenant created later
-- under the same id. Written as `Checkpoint` serializes to JSON.
for _, checkpoint in ipairs(checkpoints) do
  if redis.call('EXISTS', checkpoint.record) == 1 then
    local stored = stored_windows(checkpoint.key) or {}
    local windows = {}
    for w, new in ipairs(checkpoint.windows) do
      local kept = later(stored[w], new)
      windows[w] = string.format('{"start":%d,"count":%d}', kept.start, kept.count)
    end
    redis.call('SET', checkpoint.key, '{"windows":[' .. table.concat(windows, ',') .. ']}')
  end
end
if committed then redis.call('SET', committed, '1', 'EX', remember) end
return n_events
