-- Read an unread counter: its value, or false when it is missing, corrupt, or lapsed (the
-- earliest counted notification has expired since it was counted: both keys are dropped and
-- the caller recounts in MongoDB).
-- KEYS[1] = notifications:count:{userId}; KEYS[2] = notifications:count-until:{notifications:count:<userId>} (same slot);
-- ARGV[1] = now (ms since the epoch, the caller's clock).
local current = redis.call("GET", KEYS[1])
local untilms = tonumber(redis.call("GET", KEYS[2]) or "")
if untilms and tonumber(ARGV[1]) >= untilms then
  redis.call("DEL", KEYS[1], KEYS[2])
  return false
end
if current and string.match(current, "^%d+$") then
  return tonumber(current)
end
return false
