-- Prepended to every history script (realtime.history `script_text`): the life of the master it runs on.
-- A topic's epoch hash records, in field "r", the replication id of the master that last wrote it.
-- A replica promoted after a failover may lack the newest entries its old master handed out, so
-- a history written in the old master's life ends with it: `life_ended(r)` is true when `r` is
-- the id this master replicated from before it was promoted (INFO's master_replid2); that topic
-- then starts a new epoch and every offset of the old one answers recovered=false. A restart
-- keeps what was persisted (Redis 7 takes a new id then, but no second one): that history goes on.
local replication = redis.call("INFO", "replication")
local life = string.match(replication, "master_replid:(%x+)")
local previous_life = string.match(replication, "master_replid2:(%x+)")
local function life_ended(r)
  return r ~= false and r ~= nil and r ~= life and r == previous_life
end
