-- `cosock.channel`: a one-way queue between tasks. new() gives its two ends;
-- receiving waits (in a task) until a message is there, the channel closes or
-- the receiver's timeout passes. Sending never waits.
local cosock_yield -- cosock._yield, once cosock is loaded (the two modules need each other)

local channel = {}

local Sender, Receiver = {}, {}
Sender.__index, Receiver.__index = Sender, Receiver

function channel.new()
  local link = {queue = {}, first = 1, last = 0, closed = false, waker = nil}
  return setmetatable({link = link}, Sender), setmetatable({link = link, timeout = nil}, Receiver)
end

local function wake(link)
  local waker = link.waker
  if waker then waker() end
end

function Sender:send(message)
  local link = self.link
  if link.closed then return nil, "closed" end
  link.last = link.last + 1
  link.queue[link.last] = message
  wake(link)
  return true
end

function Sender:close()
  self.link.closed = true
  wake(self.link)
end

-- Sending is always possible (the queue has no bound).
function Sender:setwaker(_, waker)
  if waker then waker() end
end

function Receiver:receive()
  local link = self.link
  while true do
    if link.first <= link.last then
      local message = link.queue[link.first]
      link.queue[link.first] = nil
      link.first = link.first + 1
      return message
    end
    if link.closed then return nil, "closed" end
    cosock_yield = cosock_yield or require("cosock")._yield
    local _, _, err = cosock_yield({self}, nil, self.timeout)
    if err then return nil, err end
  end
end

function Receiver:settimeout(seconds)
  if seconds ~= nil and (type(seconds) ~= "number" or not (seconds >= 0)) then
    error("settimeout: a number of seconds >= 0, or nil to wait for ever", 2)
  end
  self.timeout = seconds
end

function Receiver:close()
  self.link.closed = true
end

function Receiver:setwaker(kind, waker)
  if kind ~= "recvr" then error("a channel receiver can only wait to receive, not " .. tostring(kind), 2) end
  local link = self.link
  link.waker = waker
  if waker and (link.first <= link.last or link.closed) then waker() end
end

return channel
