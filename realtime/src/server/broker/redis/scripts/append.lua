-- APPEND: places an event in its streams of one shard, and publishes it.
-- (What each does and why: redis/history.rs.)
--
-- KEYS: the hash and the log of each stream (all of one shard), in pairs.
-- ARGV: the shard's channel,
-- the most entries a log keeps, how long keys live unwritten (ms), the
-- envelope's header up to its positions, the rest of it with its
-- newline, the event frame, the event id, the tab left out (or ""), then
-- one new epoch per stream (for a stream without a history), then each
-- stream's name as a JSON string.
local count = #KEYS / 2
local time = redis.call('TIME')
local now = time[1] .. string.format('%03d', math.floor(time[2] / 1000))
local positions, epochs, offsets = {}, {}, {}
for i = 1, count do
  local meta, log = KEYS[2 * i - 1], KEYS[2 * i]
  if not sound(meta, log) then
    redis.call('DEL', meta, log)
  end
  local epoch = redis.call('HGET', meta, 'epoch')
  if not epoch then
    epoch = ARGV[8 + i]
    redis.call('DEL', log)
    redis.call('HSET', meta, 'epoch', epoch, 'offset', 0, 'born', now)
  end
  epochs[i] = epoch
  offsets[i] = redis.call('HINCRBY', meta, 'offset', 1)
  positions[i] = '{"epoch":"' .. epoch .. '","offset":' .. offsets[i] .. '}'
end
local all = ''
if count > 1 then
  local parts = {}
  for i = 1, count do
    parts[i] = '[' .. ARGV[8 + count + i] .. ',"' .. epochs[i] .. '",' .. offsets[i] .. ']'
  end
  all = '[' .. table.concat(parts, ',') .. ']'
end
for i = 1, count do
  local meta, log = KEYS[2 * i - 1], KEYS[2 * i]
  local entry = {log, 'MAXLEN', '~', ARGV[2], offsets[i] .. '-0',
    'frame', ARGV[6], 'id', ARGV[7], 'except', ARGV[8], 'at', now, 'all', all}
  if failed(redis.pcall('XADD', unpack(entry))) then
    -- The log runs past the hash's offset (entries no script wrote): it
    -- starts again from this event, and recoveries from before it are told
    -- they cannot be had.
    redis.call('DEL', log)
    redis.call('XADD', unpack(entry))
  end
  redis.call('PEXPIRE', meta, ARGV[3])
  redis.call('PEXPIRE', log, ARGV[3])
end
redis.call('PUBLISH', ARGV[1], ARGV[4] .. table.concat(positions, ',') .. ARGV[5] .. ARGV[6])
return count
