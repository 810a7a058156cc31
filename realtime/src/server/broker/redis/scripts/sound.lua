-- SOUND: put before every script. Whether a stream's keys are as these
-- scripts write them: a hash (or none) whose epoch, when it has one, is 16
-- hexadecimal digits with the top bit clear, beside a whole offset and a
-- whole `born` (if any); and a Redis Stream (or none) whose newest entry
-- is `<offset>-0`, no further than the hash's offset. Keys of another
-- type, or fields in another shape (another program sharing the database,
-- a hand edit), would fail every script on the stream, and with it the
-- pipeline it came in, or give envelopes no process can read: the scripts
-- take such a stream for one without a history, and its next write starts
-- it again in a new epoch.
local function sound(meta, log)
  local fields = redis.pcall('HMGET', meta, 'epoch', 'offset', 'born')
  if fields.err then
    return false
  end
  local top = redis.pcall('XREVRANGE', log, '+', '-', 'COUNT', 1)
  if top.err then
    return false
  end
  local epoch, offset, born = fields[1], fields[2], fields[3]
  if not epoch then
    return true
  end
  if #epoch ~= 16 or not string.match(epoch, '^[0-7][0-9a-f]+$') then
    return false
  end
  if not offset or #offset > 15 or not string.match(offset, '^%d+$') then
    return false
  end
  if born and (#born > 15 or not string.match(born, '^%d+$')) then
    return false
  end
  if #top == 1 then
    local newest = string.match(top[1][1], '^(%d+)%-0$')
    if not newest or #newest > 15 or tonumber(newest) > tonumber(offset) then
      return false
    end
  end
  return true
end

