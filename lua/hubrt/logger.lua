-- A logger as the hub's library shapes them (`require "log"`, `device.log`): trace, debug,
-- info, warn and error, each also as *_with(opts, ...), and log(opts, level, ...). The
-- arguments are joined like print's; `send(level, text)` delivers the line.
local select, tostring, concat = select, tostring, table.concat

local function join(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  return concat(parts, " ")
end

return function(send)
  local logger = {}
  for _, level in ipairs{"trace", "debug", "info", "warn", "error"} do
    logger[level] = function(...) send(level, join(...)) end
    -- info_with({hub_logs = true}, ...) as in the hub's library: the options do not matter here
    logger[level .. "_with"] = function(_, ...) send(level, join(...)) end
  end
  function logger.log(_, level, ...)
    send(type(level) == "string" and level or "info", join(...))
  end
  for _, level in ipairs{"trace", "debug", "info", "warn", "error", "fatal"} do
    logger["LOG_LEVEL_" .. level:upper()] = level == "fatal" and "error" or level
  end
  return logger
end
