-- `require "log"`: the hub's log stream. Arguments are joined like print's.
local _, host = ...

local select, tostring, concat = select, tostring, table.concat

local function join(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  return concat(parts, " ")
end

local log = {}
for _, level in ipairs{"trace", "debug", "info", "warn", "error"} do
  log[level] = function(...) host.log(level, join(...)) end
  -- log.info_with({hub_logs = true}, ...) as in the hub's library: the options do not matter here
  log[level .. "_with"] = function(_, ...) host.log(level, join(...)) end
end

function log.log(opts, level, ...)
  host.log(type(level) == "string" and level or "info", join(...))
end

return log
