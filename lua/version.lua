-- `require "version"`: the API versions of the hub, as drivers test them (`if version.api < 13`).
-- The numbers are hubrt's: at or above every check the platform's public drivers make, so
-- a driver takes its path for current hubs.
return {api = 15, rpc = 8}
