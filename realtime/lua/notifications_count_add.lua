-- Move an unread counter by ARGV[1], never below 0, only if it exists and is still valid: a
-- missing, corrupt or lapsed counter is left missing for the caller to set from a MongoDB count.
-- KEYS[1] = notifications:count:{userId}; KEYS[2] = its companion notifications:count-until:{notifications:count:<userId>} (same slot)
-- (ms since the epoch at which the earliest counted notification expires: the count is wrong
-- from then on). ARGV[2] = now (ms, the caller's clock); ARGV[3] = the expiry (ms) of the
-- notification being added, or "". Both keys keep the counter's TTL.
-- Returns the new value, or false when missing.
local current = tonumber(redis.call("GET", KEYS[1]) or "")
local untilms = tonumber(redis.call("GET", KEYS[2]) or "")
if (not current) or (untilms and tonumber(ARGV[2]) >= untilms) then
  redis.call("DEL", KEYS[1], KEYS[2])
  return false
end
local moved = current + tonumber(ARGV[1])
if moved < 0 then moved = 0 end
redis.call("SET", KEYS[1], string.format("%d", moved), "KEEPTTL")
local expires = tonumber(ARGV[3])
if expires and tonumber(ARGV[1]) > 0 and ((not untilms) or expires < untilms) then
  local ttl = redis.call("PTTL", KEYS[1])
  if ttl > 0 then
    redis.call("SET", KEYS[2], string.format("%d", expires), "PX", ttl)
  else
    redis.call("SET", KEYS[2], string.format("%d", expires))
  end
end
return moved
