-- Threads, as the hub gives drivers: a queue of events that one cosock task
-- runs one after the other. Each device has one (`device.thread`), the driver
-- has one; a handler waiting on a socket or a channel holds up its own
-- thread only. An error in an event is reported, and the thread goes on.
local _, host = ...

local cosock = require "cosock"

local unpack = table.unpack or unpack

local Thread = {}
Thread.__index = Thread

local function run_events(rx)
  return function()
    while true do
      local event = rx:receive()
      if event == nil then return end -- closed
      cosock._describe(event.what)
      local ok, kind, message, trace = host.try(event.fn, unpack(event.args, 1, event.n))
      if not ok then host.task_failed(event.what, kind, message, trace) end
    end
  end
end

-- `driver` is what timer callbacks get, as on the hub.
-- (Its task starts with its first event: most threads of a short test never get one.)
function Thread.new(driver, name)
  return setmetatable({driver = driver, name = name}, Thread)
end

-- Runs fn(...) after the events queued before it; `what` names it in errors and time-outs.
function Thread:_queue(what, fn, ...)
  if self._tx == nil then
    local tx, rx = cosock.channel.new()
    self._tx = tx
    cosock._spawn(run_events(rx), self.name, true)
  end
  self._tx:send({what = what, fn = fn, args = {...}, n = select("#", ...)})
end

function Thread:queue_event(fn, ...)
  if type(fn) ~= "function" then host.raise("thread:queue_event(fn, ...): fn must be a function") end
  self:_queue("queued event", fn, ...)
end

local function start_timer(self, seconds, repeating, callback, name)
  if type(seconds) ~= "number" or not (seconds >= 0 and seconds < math.huge) then
    host.raise("timer delay must be a finite number of seconds >= 0, got " .. tostring(seconds))
  end
  if type(callback) ~= "function" then host.raise("timer callback must be a function") end
  local timer = {name = name, repeating = repeating}
  timer.id = cosock._start_timer(seconds, repeating, name, function(id)
    self:_queue("timer " .. tostring(name or id), callback, self.driver)
  end)
  return timer
end

function Thread:call_with_delay(seconds, callback, name)
  return start_timer(self, seconds, false, callback, name)
end

function Thread:call_on_schedule(seconds, callback, name)
  return start_timer(self, seconds, true, callback, name)
end

function Thread:cancel_timer(timer)
  if type(timer) == "table" and timer.id ~= nil then cosock._cancel_timer(timer.id) end
end

-- No more events: the thread's task ends once those queued are done.
function Thread:close()
  if self._tx then self._tx:close() end
end

return Thread
