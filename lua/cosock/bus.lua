-- `cosock.bus()`: one sender, many subscribers; each subscriber gets every
-- message sent after it subscribed, in order.
local channel = require "cosock.channel"

local Bus, Subscription = {}, {}
Bus.__index, Subscription.__index = Bus, Subscription

local function new_bus()
  return setmetatable({subscribers = setmetatable({}, {__mode = "k"}), closed = false}, Bus)
end

function Bus:subscribe()
  local tx, rx = channel.new()
  if self.closed then tx:close() end
  local subscription = setmetatable({rx = rx}, Subscription)
  self.subscribers[subscription] = tx
  return subscription
end

function Bus:send(message)
  if self.closed then return nil, "closed" end
  for _, tx in pairs(self.subscribers) do tx:send(message) end
  return true
end

function Bus:close()
  self.closed = true
  for _, tx in pairs(self.subscribers) do tx:close() end
end

function Subscription:receive() return self.rx:receive() end
function Subscription:settimeout(seconds) return self.rx:settimeout(seconds) end
function Subscription:setwaker(kind, waker) return self.rx:setwaker(kind, waker) end
function Subscription:close() self.rx:close() end

return new_bus
