-- Events stored after an offset, if none after it was lost. Read-only.
-- KEYS[1] = epoch hash {epoch, last}, KEYS[2] = stream of events {p = previous id, f = frame}
-- ARGV[1] = the offset's epoch, ARGV[2] = its stream id ("<ms>-<seq>", validated by the caller)
-- Returns {0} when not recovered, else {1, id1, frame1, id2, frame2, ...} in order.
local meta, stream = KEYS[1], KEYS[2]
local state = redis.call("HMGET", meta, "epoch", "last", "r")
local epoch, last = state[1], state[2]
-- After a failover the promoted master may lack entries the old one handed out: nothing of that
-- epoch is recovered (the next publish or position starts a new one).
if not epoch or epoch ~= ARGV[1] or life_ended(state[3]) then return {0} end

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
-- An offset after `last`: never given out, or given out by a master whose newest entries its
-- replica had not received when it was promoted (a failover).
if older(last, from) then return {0} end

-- Every entry links to its predecessor (`p`, the `last` it was appended after), so nothing after
-- `from` is missing iff the first entry after it links back to it. This refuses an offset older
-- than what trimming or expiry left, one this epoch never gave out, and one a failover lost
-- once the promoted master has appended past it (the first entry after it links to an older one).
local entries = redis.call("XRANGE", stream, "(" .. from, "+")
local next_entry = entries[1]
if not next_entry then return {0} end  -- `last` is after `from`, yet no entry after `from` is held
local linked = false
local next_fields = next_entry[2]
for i = 1, #next_fields, 2 do
  if next_fields[i] == "p" then linked = next_fields[i + 1] == from end
end
if not linked then return {0} end

local out = {1}
for _, entry in ipairs(entries) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == "f" then
      out[#out + 1] = entry[1]
      out[#out + 1] = fields[i + 1]
    end
  end
end
return out
