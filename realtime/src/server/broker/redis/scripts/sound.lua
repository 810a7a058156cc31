-- SOUND: put before every script. Whether a stream's keys are as these
-- scripts write them: a hash (or none) whose epoch, when it has one, is 16
-- hexadecimal digits with the top bit clear, beside a whole offset of at
-- most 13 digits (Lua writes larger numbers in exponent form, which no
-- entry id takes) and a whole `born` (if any); and a Redis Stream, or
-- none. Keys of another type, or fields in another shape (another program
-- sharing the database, a hand edit), would fail every script on the
-- stream, and with it the pipeline it came in, or give envelopes no
-- process can read: the scripts take such a stream for one without a
-- history, and its next write starts it again in a new epoch. (A log whose
-- entries run past the hash's offset is found by `APPEND`'s `XADD`.)

-- Whether a reply of `redis.pcall` is an error.
local function failed(reply)
  return type(reply) == 'table' and reply.err ~= nil
end

local function sound(meta, log)
  local fields = redis.pcall('HMGET', meta, 'epoch', 'offset', 'born')
  if failed(fields) or failed(redis.pcall('XLEN', log)) then
    return false
  end
  local epoch, offset, born = fields[1], fields[2], fields[3]
  if not epoch then
    return true
  end
  if #epoch ~= 16 or not string.match(epoch, '^[0-7][0-9a-f]+$') then
    return false
  end
  if not offset or #offset > 13 or not string.match(offset, '^%d+$') then
    return false
  end
  if born and (#born > 15 or not string.match(born, '^%d+$')) then
    return false
  end
  return true
end

