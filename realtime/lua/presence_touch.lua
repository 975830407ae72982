-- Heartbeat of a live socket; ARGV[6] = "1" when a command came (lastActive becomes now).
-- Re-registers a socket whose registration had expired. Returns 1 when the status changed.
local reported, announced = presence_status(), announced_status()
register_connection()
if ARGV[6] == "1" or redis.call("HEXISTS", hash, "lastActive") == 0 then
  redis.call("HSET", hash, "lastActive", now_iso)
end
local after = "online"
if redis.call("HGET", hash, "lastActive") < away_cutoff then after = "away" end
redis.call("HSET", hash, "status", after)
redis.call("PEXPIRE", hash, ttl)
if reported == after and announced == after then return 0 end
return 1
