-- Store one event in a topic's recent history and publish it, atomically.
-- KEYS[1] = epoch hash {epoch, last, r}, KEYS[2] = stream of events {p = previous id, f = frame}
-- ARGV[1] = channel (the topic), ARGV[2] = MessagePack fixmap of the frame without "offset",
-- ARGV[3] = max events (approximate, MAXLEN ~), ARGV[4] = max age in ms,
-- ARGV[5] = a fresh epoch token, used only when the topic has none (first use or data lost)
-- Optional, for exactly-once publishing of stored changes: KEYS[3] = hash {event key -> offset},
-- ARGV[6] = the event's key (e.g. "m:<message id>"). An event whose key this epoch already
-- published is not stored or published again: its first offset is returned.
-- Returns the event's offset "<epoch>-<stream id>". The published message is ARGV[2] with
-- the "offset" key appended, so subscribers and `since` see the same frame.
local meta, stream = KEYS[1], KEYS[2]
local frame = ARGV[2]
local maxlen, max_age = ARGV[3], tonumber(ARGV[4])

local head = string.byte(frame, 1)
if head == nil or head < 0x80 or head > 0x8e then
  return redis.error_reply("ERR history: frame must be a MessagePack fixmap of at most 14 keys")
end

local t = redis.call("TIME")
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local state = redis.call("HMGET", meta, "epoch", "last", "r")
local epoch, last = state[1], state[2]
if epoch and life_ended(state[3]) then epoch = nil end  -- promoted after a failover: a new epoch
local ids, event_key = KEYS[3], ARGV[6]
if event_key == "" then event_key = nil end
if event_key and epoch then
  local seen = redis.call("HGET", ids, event_key)
  if seen and string.sub(seen, 1, #epoch + 1) == epoch .. "-" then return seen end
end
local id = "*"
if not epoch then
  -- A new epoch starts with an empty history: drop entries of a lost epoch, if any.
  epoch, last = ARGV[5], "0-0"
  redis.call("DEL", stream)
elseif last ~= "0-0" and redis.call("EXISTS", stream) == 0 then
  -- The stream expired while the epoch lived on (kept by `position`): a new stream
  -- must still number after `last`, whatever the clock says.
  local ms, seq = string.match(last, "^(%d+)-(%d+)$")
  ms, seq = tonumber(ms), tonumber(seq)
  if now_ms > ms then id = string.format("%.0f-0", now_ms) else id = string.format("%.0f-%.0f", ms, seq + 1) end
end

if event_key then
  id = redis.call("XADD", stream, "MAXLEN", "~", maxlen, id, "p", last, "f", frame, "k", event_key)
else
  id = redis.call("XADD", stream, "MAXLEN", "~", maxlen, id, "p", last, "f", frame)
end
redis.call("XTRIM", stream, "MINID", "~", string.format("%.0f", now_ms - max_age))
redis.call("HSET", meta, "epoch", epoch, "last", id, "r", life)
local expire_at = string.format("%.0f", now_ms + max_age)
redis.call("PEXPIREAT", meta, expire_at)
redis.call("PEXPIREAT", stream, expire_at)

local offset = epoch .. "-" .. id
if event_key then
  -- Values carry their epoch, so a hash that outlived its epoch answers nothing.
  redis.call("HSET", ids, event_key, offset)
  if redis.call("HLEN", ids) > 2 * tonumber(maxlen) then
    -- Keep the keys of the events still held (amortized: once per `maxlen` keyed publishes).
    redis.call("DEL", ids)
    for _, entry in ipairs(redis.call("XRANGE", stream, "-", "+")) do
      local fields = entry[2]
      for i = 1, #fields, 2 do
        if fields[i] == "k" then redis.call("HSET", ids, fields[i + 1], epoch .. "-" .. entry[1]) end
      end
    end
  end
  redis.call("PEXPIREAT", ids, expire_at)
end
local header
if #offset < 32 then header = string.char(0xa0 + #offset) else header = string.char(0xd9, #offset) end
redis.call("PUBLISH", ARGV[1], string.char(head + 1) .. string.sub(frame, 2) .. "\166offset" .. header .. offset)
return offset
