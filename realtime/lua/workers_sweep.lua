-- Remove active workers whose liveness key expired, atomically with respect to heartbeats.
-- KEYS[1] = maintenance:active:workers; KEYS[i+1] = maintenance:worker:{maintenance:active:workers}:ARGV[i] (realtime/keys.py)
-- Returns the removed user ids.
local removed = {}
for i, user_id in ipairs(ARGV) do
  if redis.call("EXISTS", KEYS[i + 1]) == 0 and redis.call("SREM", KEYS[1], user_id) == 1 then
    removed[#removed + 1] = user_id
  end
end
return removed
