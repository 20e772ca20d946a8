-- Deletes the oldest entries of one audit log, those before a time prefix, but at most a given
-- number, so that no call blocks Redis long however many are due (see `delete_audit_before` in
-- redis_store.rs, which calls again while a call deletes the most it may).
--
--   KEYS: the audit log (a sorted set, all scores 0, so members are in byte order).
--   ARGV: the exclusive upper bound, `(` followed by the 8-byte time prefix of the cutoff;
--         the most entries to delete.
-- Returns the number of entries deleted.
local log, before, most = KEYS[1], ARGV[1], tonumber(ARGV[2])
-- The last entry this call may delete, when more than `most` are older; else cut at the bound.
local last = redis.call('ZRANGEBYLEX', log, '-', before, 'LIMIT', most - 1, 1)[1]
if last then before = '[' .. last end
return redis.call('ZREMRANGEBYLEX', log, '-', before)
