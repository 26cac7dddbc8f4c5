-- `cosock.socket` (and `require "socket"`): waiting and the hub's clock.
local cosock -- loaded on first use (the two modules need each other)

local socket = {}

local function yield(...)
  cosock = cosock or require "cosock"
  return cosock._yield(...)
end

-- Ready receivers and senders among those given, or nil, nil, "timeout".
function socket.select(receivers, senders, timeout)
  return yield(receivers, senders, timeout)
end

function socket.sleep(seconds)
  if type(seconds) ~= "number" or not (seconds >= 0) then
    error("sleep: a number of seconds >= 0, got " .. tostring(seconds), 2)
  end
  yield(nil, nil, seconds)
end

-- Seconds since the epoch, fractional, on the hub's clock.
function socket.gettime()
  cosock = cosock or require "cosock"
  return cosock._gettime()
end

local function not_yet(name)
  return function()
    error("cosock.socket." .. name .. ": hubrt has no sockets yet (planned: a simulated LAN and "
          .. "--network real)", 2)
  end
end
socket.tcp, socket.udp = not_yet("tcp"), not_yet("udp")

return socket
