-- A socket closed. When no live socket remains, the hash says offline (lastActive kept) and
-- 1 is returned, unless it already said so or has expired (then the user was offline already).
redis.call("ZREM", conns, conn)
redis.call("ZREMRANGEBYSCORE", conns, "-inf", now)
if redis.call("ZCARD", conns) > 0 then return 0 end
redis.call("DEL", conns)
local stored = redis.call("HGET", hash, "status")
if not stored or stored == "offline" then return 0 end
redis.call("HSET", hash, "status", "offline")
redis.call("PEXPIRE", hash, ttl)
return 1
