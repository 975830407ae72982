-- The current position of a topic's history, creating its epoch on first use.
-- KEYS[1] = epoch hash {epoch, last, r}, KEYS[2] = stream of events
-- ARGV[1] = a fresh epoch token (used only when the topic has none), ARGV[2] = max age in ms
-- Returns "<epoch>-<id of the last stored event, or 0-0>". Refreshing the hash's expiry
-- keeps a quiet but watched topic's offsets valid; it may outlive its stream, which is safe:
-- `since` then recovers only an offset equal to `last`.
local meta, stream = KEYS[1], KEYS[2]
local state = redis.call("HMGET", meta, "epoch", "last", "r")
local epoch, last = state[1], state[2]
if not epoch or life_ended(state[3]) then
  epoch, last = ARGV[1], "0-0"
  redis.call("DEL", stream)
  redis.call("HSET", meta, "epoch", epoch, "last", last, "r", life)
elseif state[3] ~= life then
  redis.call("HSET", meta, "r", life)  -- a restart (or a hash from before this field): same history
end
redis.call("PEXPIRE", meta, ARGV[2])
return epoch .. "-" .. last
