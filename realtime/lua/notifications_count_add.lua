-- Move an unread counter by ARGV[1], never below 0, only if it exists: a missing (or corrupt)
-- counter is left missing for the caller to set from a MongoDB count.
-- KEYS[1] = notifications:count:{userId}. Returns the new value, or false when missing.
local current = tonumber(redis.call("GET", KEYS[1]) or "")
if not current then
  redis.call("DEL", KEYS[1])
  return false
end
local moved = current + tonumber(ARGV[1])
if moved < 0 then moved = 0 end
redis.call("SET", KEYS[1], string.format("%d", moved))
return moved
