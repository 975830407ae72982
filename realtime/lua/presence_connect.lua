-- A socket opened: register it, mark activity now. Returns 1 when the user was not online before.
local before = presence_status()
register_connection()
redis.call("HSET", hash, "status", "online", "lastActive", now_iso)
redis.call("PEXPIRE", hash, ttl)
if before == "online" then return 0 end
return 1
