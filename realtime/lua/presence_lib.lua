-- Prepended to presence_{connect,touch,disconnect}.lua when they are loaded (one chunk each).
-- KEYS[1] = chat:presence:{userId}, the seed's hash {status, lastActive}
-- KEYS[2] = chat:presence:conns:{chat:presence:<userId>} (same slot), live sockets: member = connection id, score = expiry (ms)
-- ARGV[1] = now (ms), ARGV[2] = ttl (ms), ARGV[3] = connection id,
-- ARGV[4] = now as fixed-width ISO 8601 UTC, ARGV[5] = the away cutoff (now - away_after) in that format.
-- Fixed-width ISO strings compare as the times do, so no date parsing is needed here.
local hash, conns = KEYS[1], KEYS[2]
local now, ttl, conn = ARGV[1], ARGV[2], ARGV[3]
local now_iso, away_cutoff = ARGV[4], ARGV[5]
local expiry = string.format("%.0f", tonumber(now) + tonumber(ttl))

-- The status the protocol reports; the same rule as realtime/presence/base.py compute_status.
local function presence_status()
  local fields = redis.call("HMGET", hash, "status", "lastActive")
  local stored, last = fields[1], fields[2]
  if not stored or stored == "offline" then return "offline" end
  if redis.call("ZCOUNT", conns, "(" .. now, "+inf") == 0 then return "offline" end
  if not last or last < away_cutoff then return "away" end
  return "online"
end

-- The status last written, i.e. announced to the user's conversations; offline when no socket
-- is live. A change must be announced when the new status differs from either this one or
-- the reported one: comparing with the reported one only, a heartbeat never saw the change
-- to `away` (it already reads away from lastActive; issue #15); comparing with the written
-- one only, someone shown `away` by a query would never hear `online` again.
local function announced_status()
  local stored = redis.call("HGET", hash, "status")
  if not stored or stored == "offline" then return "offline" end
  if redis.call("ZCOUNT", conns, "(" .. now, "+inf") == 0 then return "offline" end
  return stored
end

local function register_connection()
  redis.call("ZREMRANGEBYSCORE", conns, "-inf", now)
  redis.call("ZADD", conns, expiry, conn)
  redis.call("PEXPIRE", conns, ttl)
end
