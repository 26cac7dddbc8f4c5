-- `require "log"`: the hub's log stream. Arguments are joined like print's.
local _, host = ...

return require("hubrt.logger")(function(level, text) host.log(level, text) end)
