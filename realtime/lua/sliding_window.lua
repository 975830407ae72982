-- Sliding-window limiter on a sorted set of timestamps.
-- KEYS[1] = the set; ARGV = now_ms, window_ms, limit, record (1 = add this hit), member
-- Returns {allowed (1/0), count after, retry_after_ms}.
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local record = ARGV[4] == "1"
redis.call("ZREMRANGEBYSCORE", key, "-inf", now - window)
local count = redis.call("ZCARD", key)
if count >= limit then
  local oldest = redis.call("ZRANGE", key, 0, 0, "WITHSCORES")
  local retry = window
  if oldest[2] then retry = tonumber(oldest[2]) + window - now end
  return {0, count, retry}
end
if record then
  redis.call("ZADD", key, now, ARGV[5])
  count = count + 1
  redis.call("PEXPIRE", key, window)
end
return {1, count, 0}
