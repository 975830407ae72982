-- Set an unread counter to a fresh MongoDB count unless it moved since it was read (compare and set).
-- KEYS[1] = notifications:count:{userId}; ARGV[1] = the value read before counting ("" = missing),
-- ARGV[2] = the count. Returns the counter's value after the call.
local current = redis.call("GET", KEYS[1])
if (current or "") == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[2])
  return tonumber(ARGV[2])
end
return tonumber(current) or -1
