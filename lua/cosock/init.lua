-- `require "cosock"`: cooperative tasks, as the hub runs a driver. hubrt's own
-- implementation of the library the hub ships, and the driver's scheduler.
--
-- A task is a coroutine. It waits by yielding what it waits for, as cosock's
-- tasks do: `coroutine.yield(receivers, senders, timeout)`. Everything waited
-- on is an object with a `setwaker(kind, waker)` method (channels, buses,
-- timers, sockets, and any object of the driver's own made the same way): the
-- object calls `waker()` when it is ready, and the task resumes with the lists
-- of ready receivers and senders (or nil, nil, "timeout"). Timeouts are hub
-- timers, so they run on the hub's clock (virtual in scenarios and tests).
--
-- The hub's messages are dispatched by st.driver onto threads (tasks with a
-- queue); after each dispatch every runnable task runs until all of them wait.
-- Each turn a task gets is limited by --handler-timeout; a task stopped there
-- is named in the error.
local _, host = ...

local cosock = {}

-- the scheduler -----------------------------------------------------------

local tasks = {} -- coroutine -> task {co, name, what, gen, queued, recvt, sendt, timer, respawn, ...}
local ready = {first = 1, last = 0} -- tasks to resume, in the order they were woken
local timers = {} -- hub timer id -> {fn = called when it fires, repeating = true or nil}
local current -- the task running now

local function push(task)
  ready.last = ready.last + 1
  ready[ready.last] = task
end

local function pop()
  if ready.first > ready.last then return nil end
  local task = ready[ready.first]
  ready[ready.first] = nil
  ready.first = ready.first + 1
  return task
end

-- Marks a task runnable: `obj` (if any) is ready for `kind`, or `err` happened. A waker
-- made for an earlier wait (generation `gen`) does nothing.
local function wake(task, gen, kind, obj, err)
  if task.gen ~= gen or task.dead then return end
  if not task.queued then
    task.queued = true
    push(task)
  end
  if obj ~= nil then
    local field = kind == "recvr" and "recv_ready" or "send_ready"
    local list = task[field]
    if list then list[#list + 1] = obj else task[field] = {obj} end
  end
  if err ~= nil then task.err = err end
end

-- A hub timer (on the hub's clock) calling fn once, or every `seconds` when repeating.
local function start_timer(seconds, repeating, name, fn)
  local id = host.timer_start(seconds, repeating, name)
  timers[id] = {fn = fn, repeating = repeating or nil}
  return id
end

local function cancel_timer(id)
  if timers[id] ~= nil then
    timers[id] = nil
    host.timer_cancel(id)
  end
end

local function fire(id)
  local timer = timers[id]
  if timer == nil then return end
  if not timer.repeating then timers[id] = nil end
  timer.fn(id)
end

local function describe(task)
  return task.what or ("cosock task " .. (task.name and ("'" .. tostring(task.name) .. "'") or tostring(task.co)))
end

-- (ipairs, as check_waitable: a list such as {channel, maybe_nil_socket} ends at its first nil)
local function set_wakers(list, kind, task, gen)
  for _, obj in ipairs(list) do
    obj:setwaker(kind, gen and function() wake(task, gen, kind, obj) end)
  end
end

-- Stops waiting: wakers taken back, the timeout's timer cancelled.
local function unwait(task)
  if task.recvt then set_wakers(task.recvt, "recvr") end
  if task.sendt then set_wakers(task.sendt, "sendr") end
  task.recvt, task.sendt = nil, nil
  if task.timer then
    cancel_timer(task.timer)
    task.timer = nil
  end
end

local function check_waitable(list, what)
  if list == nil then return nil end
  if type(list) ~= "table" then
    return "cosock: a task waits on a list of " .. what .. ", got " .. type(list)
  end
  for _, obj in ipairs(list) do
    if type(obj) ~= "table" or type(obj.setwaker) ~= "function" then
      return "cosock: cannot wait on " .. tostring(obj) .. " (" .. type(obj) .. "): it has no setwaker method"
    end
  end
end

local function finish(task)
  task.dead = true
  tasks[task.co] = nil
  unwait(task)
end

-- (Re)starts a task record on a fresh coroutine: it runs at the scheduler's next turn.
local function start(task)
  task.co = coroutine.create(task.fn)
  task.dead, task.start, task.queued = false, true, true
  task.gen = task.gen + 1
  tasks[task.co] = task
  push(task)
end

-- A task ended with an error (or was stopped): the hub hears of it; os.exit goes on up.
local function failed(task, err)
  finish(task)
  local kind = host.stop_kind(err)
  if kind == "exit" or not host.task_failed then error(err, 0) end -- (a standalone script: it fails)
  if kind ~= nil then
    host.task_failed(describe(task), kind, tostring(err), "")
  else
    local message = tostring(err)
    local kind_of = message == "not enough memory" and "memory" or "error"
    host.task_failed(describe(task), kind_of, message, host.traceback(task.co, message))
  end
  if task.respawn then start(task) end -- a thread goes on with its queue
end

-- What a task yielded: what it waits for from now on.
local function wait(task, recvt, sendt, timeout)
  local problem = check_waitable(recvt, "receivers") or check_waitable(sendt, "senders")
  if problem == nil and timeout ~= nil and (type(timeout) ~= "number" or not (timeout >= 0)) then
    problem = "cosock: a timeout is a number of seconds >= 0, got " .. tostring(timeout)
  end
  if problem then return failed(task, problem) end
  local gen = task.gen + 1
  task.gen = gen
  task.recvt, task.sendt = recvt, sendt
  if recvt then set_wakers(recvt, "recvr", task, gen) end
  if sendt then set_wakers(sendt, "sendr", task, gen) end
  if timeout ~= nil and not task.queued then
    if timeout == 0 then
      wake(task, gen, nil, nil, "timeout")
    elseif timeout < math.huge then
      task.timer = start_timer(timeout, false, nil, function() task.timer = nil; wake(task, gen, nil, nil, "timeout") end)
    end
  end
end

local function after_turn(task, ok, ...)
  current = nil
  if not ok then
    failed(task, (...))
  elseif coroutine.status(task.co) == "dead" then
    finish(task)
  else
    wait(task, ...)
  end
end

-- Runs every runnable task until all of them wait (the end of a dispatch).
local function run()
  while true do
    local task = pop()
    if task == nil then return end
    if not task.dead then
      local recv, send, err, fresh = task.recv_ready, task.send_ready, task.err, task.start
      task.queued, task.recv_ready, task.send_ready, task.err, task.start = false, nil, nil, nil, nil
      unwait(task)
      current = task
      if fresh then
        after_turn(task, host.resume(task.co, describe(task)))
      elseif err and not recv and not send then
        after_turn(task, host.resume(task.co, describe(task), nil, nil, err))
      else
        after_turn(task, host.resume(task.co, describe(task), recv or {}, send or {}))
      end
    end
  end
end

host.install_scheduler{run = run, fire = fire}

-- `respawn`: started again after an error that ends it (a thread's loop).
local function spawn(fn, name, respawn)
  if type(fn) ~= "function" then host.raise("cosock.spawn(fn, name): fn must be a function") end
  local task = {fn = fn, name = name, gen = 0, respawn = respawn}
  start(task)
  return task
end

-- the public API ------------------------------------------------------------

function cosock.spawn(fn, name)
  spawn(fn, name)
end

-- In a driver the hub's loop runs the tasks (driver:run()). In a standalone script (`hubrt lua`)
-- this runs them here until every one has ended; one still waiting then is an error, as only a
-- driver has the hub's timers and network to wake it.
function cosock.run()
  if host.timer_start then return end -- a driver: its tasks run as the hub dispatches
  run()
  for _, task in pairs(tasks) do
    host.raise("cosock.run(): " .. describe(task) .. " still waits (on a channel, a timer or a socket) "
               .. "and nothing is left to wake it; in a standalone script tasks run until they wait, "
               .. "timers and sockets need a driver under hubrt run")
  end
end

-- The running task starts a new piece of work (a thread's next event): it gets a time limit
-- of its own, and `what` names it in a time-out or an error report.
function cosock._describe(what)
  if current then
    current.what = what
    host.new_turn(what)
  end
end

-- Stops a task where it waits (a channel handler that is unregistered).
function cosock._kill(task)
  if task and not task.dead then finish(task) end
end

cosock._spawn = spawn
cosock._start_timer = start_timer
cosock._cancel_timer = cancel_timer

-- A coroutine that is not a cosock task (main chunk, a driver's own coroutine) cannot wait.
function cosock._yield(recvt, sendt, timeout)
  local co = coroutine.running()
  if co == nil or tasks[co] == nil then
    host.raise("cosock: waiting (a receive, select or sleep) outside a cosock task; "
               .. "use cosock.spawn, or do it in a handler")
  end
  if not host.timer_start and type(timeout) == "number" and timeout > 0 and timeout < math.huge then
    host.raise("cosock: timeouts and sleeps need the hub's timers; a standalone script has none "
               .. "(run this as a driver under hubrt run)")
  end
  return coroutine.yield(recvt, sendt, timeout)
end

cosock.channel = require "cosock.channel"
-- the rest is loaded when a driver first uses it (every driver starts cosock; few use all of it)
local LATER = {bus = "cosock.bus", timer = "cosock.timer", socket = "cosock.socket", ssl = "cosock.ssl"}
setmetatable(cosock, {__index = function(t, name)
  local module = LATER[name]
  if module == nil then return nil end
  local loaded = require(module)
  rawset(t, name, loaded)
  return loaded
end})

-- cosock.asyncify(name): the module with `socket` meaning cosock's sockets, which in hubrt it
-- always does (require "socket" gives cosock.socket).
function cosock.asyncify(name)
  return require(name)
end

return cosock
