-- Set an unread counter to a fresh MongoDB count unless it moved since it was read (compare and set).
-- KEYS[1] = notifications:count:{userId}; KEYS[2] = notifications:count-until:{notifications:count:<userId>} (same slot).
-- ARGV[1] = the value read before counting ("" = missing), ARGV[2] = the count,
-- ARGV[3] = when the earliest counted notification expires (ms since the epoch) or "",
-- ARGV[4] = the counter's TTL (ms). Returns the counter's value after the call.
local current = redis.call("GET", KEYS[1])
if (current or "") == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[4])
  if ARGV[3] ~= "" then
    redis.call("SET", KEYS[2], ARGV[3], "PX", ARGV[4])
  else
    redis.call("DEL", KEYS[2])
  end
  return tonumber(ARGV[2])
end
return tonumber(current) or -1
