-- READ: where a stream stands, and its events after a reader's position.
-- (What each does and why: redis/history.rs.)
--
-- KEYS: a stream's hash and log. ARGV: the epoch and offset to read after
-- ("" and -1 for the position only), the most events to read, when the
-- reader saw the stream unwritten (ms by Redis's clock, or ""), how long
-- keys live unwritten (ms), the id of the event the reader saw at that
-- offset (or ""). Returns the epoch ("" for a stream without a history:
-- nothing is written), the last offset, the events, Redis's clock (ms), 1
-- if the stream went back behind the reader's position (0 otherwise), the
-- id of the event at the last offset (or "", if no longer kept), and 1 if
-- the events are read from the epoch's start (a reader that saw the
-- stream unwritten before the epoch was born has none of it).
local time = redis.call('TIME')
local now = time[1] .. string.format('%03d', math.floor(time[2] / 1000))
-- Keys these scripts did not write: as if the stream had no history.
if not sound(KEYS[1], KEYS[2]) then
  return {'', 0, {}, now, 0, '', 0}
end
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  return {'', 0, {}, now, 0, '', 0}
end
local last = tonumber(redis.call('HGET', KEYS[1], 'offset'))
local since_epoch, since = ARGV[1], tonumber(ARGV[2])
local from_start = 0
if ARGV[4] ~= '' then
  local born = redis.call('HGET', KEYS[1], 'born')
  if born and tonumber(born) >= tonumber(ARGV[4]) then
    since_epoch, since, from_start = epoch, 0, 1
  end
end
local went_back = 0
if since_epoch == epoch and since > last then
  went_back = 1
elseif since_epoch == epoch and ARGV[6] ~= '' and since >= 1 then
  local seen = redis.call('XRANGE', KEYS[2], since .. '-0', since .. '-0')
  if #seen == 1 then
    local fields = seen[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'id' and fields[i + 1] ~= ARGV[6] then
        went_back = 1
      end
    end
  end
end
local entries = {}
if went_back == 0 and since_epoch == epoch and since >= 0 and since < last
  and last - since <= tonumber(ARGV[3]) then
  entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+', 'COUNT', ARGV[3])
end
local last_id = ''
local tail = redis.call('XRANGE', KEYS[2], last .. '-0', last .. '-0')
if #tail == 1 then
  local fields = tail[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'id' then
      last_id = fields[i + 1]
    end
  end
end
return {epoch, last, entries, now, went_back, last_id, from_start}
