-- `cosock.timer`: timers a task can select on with its channels and sockets.
-- A timer is ready once it has gone off and stays ready until `handled()`;
-- an interval timer goes off every period. They run on the hub's clock.
local cosock -- loaded on first use (the two modules need each other)

local timer = {}
local Timer = {}
Timer.__index = Timer

local function new(seconds, repeating)
  if type(seconds) ~= "number" or not (seconds >= 0 and seconds < math.huge) then
    error("cosock.timer: a finite number of seconds >= 0, got " .. tostring(seconds), 3)
  end
  cosock = cosock or require "cosock"
  local self = setmetatable({went_off = false, waker = nil}, Timer)
  self.id = cosock._start_timer(seconds, repeating, nil, function()
    self.went_off = true
    if self.waker then self.waker() end
  end)
  return self
end

function timer.create_oneshot(seconds) return new(seconds, false) end
function timer.create_interval(seconds) return new(seconds, true) end

function Timer:handled()
  self.went_off = false
end

function Timer:cancel()
  cosock._cancel_timer(self.id)
end

function Timer:setwaker(kind, waker)
  if kind ~= "recvr" then error("a timer can only be waited on to go off, not " .. tostring(kind), 2) end
  self.waker = waker
  if waker and self.went_off then waker() end
end

return timer
