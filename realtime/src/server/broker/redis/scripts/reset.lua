-- RESET: starts a stream again in a new epoch, and says so.
-- (What each does and why: redis/history.rs.)
--
-- KEYS: a stream's hash and log. ARGV: the new epoch, how long keys live
-- unwritten (ms), the shard's channel, the envelope that says so, and the epoch
-- the stream must still have (or "" for any): several processes that
-- find the same stream gone back reset it once.
if not sound(KEYS[1], KEYS[2]) then
  redis.call('DEL', KEYS[1], KEYS[2])
end
if ARGV[5] ~= '' and redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[5] then
  return 0
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'offset', 0)
redis.call('HDEL', KEYS[1], 'born')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
