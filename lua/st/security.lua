-- `require "st.security"`: the hub's cloud-backed security services. Off the hub there is no
-- cloud to ask, so every call fails the way a failed call on a hub does: nil and the reason.
local security = {}

local OFF_HUB = "st.security is not available off the hub (hubrt has no SmartThings cloud to ask)"

setmetatable(security, {__index = function(_, name)
  if type(name) ~= "string" or name:sub(1, 1) == "_" then return nil end
  return function() return nil, OFF_HUB end
end})

return security
