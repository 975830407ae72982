-- A socket opened: register it, mark activity now. Returns 1 when the user was not online before.
local reported, announced = presence_status(), announced_status()
register_connection()
redis.call("HSET", hash, "status", "online", "lastActive", now_iso)
redis.call("PEXPIRE", hash, ttl)
if reported == "online" and announced == "online" then return 0 end
return 1
