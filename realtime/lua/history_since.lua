-- Events stored after an offset, if none after it was lost. Read-only.
-- KEYS[1] = epoch hash {epoch, last}, KEYS[2] = stream of events {p = previous id, f = frame}
-- ARGV[1] = the offset's epoch, ARGV[2] = its stream id ("<ms>-<seq>", validated by the caller)
-- Returns {0} when not recovered, else {1, id1, frame1, id2, frame2, ...} in order.
local meta, stream = KEYS[1], KEYS[2]
local state = redis.call("HMGET", meta, "epoch", "last")
local epoch, last = state[1], state[2]
if not epoch or epoch ~= ARGV[1] then return {0} end

local function parse(id)
  local ms, seq = string.match(id, "^(%d+)-(%d+)$")
  return tonumber(ms), tonumber(seq)
end
local function older(a, b)  -- a < b
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams < bms or (ams == bms and aseq < bseq)
end

local from = ARGV[2]
if from == last then return {1} end
if older(last, from) then return {0} end  -- an offset this epoch never gave out

local first = redis.call("XRANGE", stream, "-", "+", "COUNT", 1)[1]
if not first then return {0} end  -- events after `from` existed and expired
local first_fields = first[2]
local previous = nil
for i = 1, #first_fields, 2 do
  if first_fields[i] == "p" then previous = first_fields[i + 1] end
end
-- Trimming drops the oldest entries, so everything after `from` is held iff `from` is not
-- older than the first held entry's predecessor (the newest event that may be gone).
if previous == nil or older(from, previous) then return {0} end

local out = {1}
for _, entry in ipairs(redis.call("XRANGE", stream, "(" .. from, "+")) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == "f" then
      out[#out + 1] = entry[1]
      out[#out + 1] = fields[i + 1]
    end
  end
end
return out
