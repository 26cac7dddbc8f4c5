-- The host side of a driver's Lua state: builds the environment driver code
-- runs in. This chunk runs with the real globals (debug, io, package, python);
-- nothing it hands to the driver gives those back.
--
-- Called once per Lua state with `host`, a table of Python callbacks and
-- options, and returns the driver environment plus a few privileged helpers.

local host = ...

local next, type, error, select, rawget, rawset, tostring = next, type, error, select, rawget, rawset, tostring
local native_pairs, native_ipairs, native_load = pairs, ipairs, load
local pcall, xpcall, setmetatable = pcall, xpcall, setmetatable
local dgetmetatable, traceback = debug.getmetatable, debug.traceback
local is_luajit = type(jit) == "table"

-- String methods reach the real string table through the shared string
-- metatable, so remove what drivers must not have from it as well.
string.dump = nil

local env = {}

local function copy(t)
  local c = {}
  for k, v in native_pairs(t) do c[k] = v end
  return c
end

-- "file:line: " of the nearest caller that is driver code, not the runtime:
-- errors raised by runtime modules point at the driver's own line.
local getinfo, sub = debug.getinfo, string.sub
local function where(level)
  level = level + 1
  while true do
    local info = getinfo(level, "Sl")
    if not info then return "" end
    local src = info.source
    if info.what ~= "C" and sub(src, 1, 9) ~= "@[hubrt]/" and info.currentline > 0 then
      if sub(src, 1, 1) == "@" or sub(src, 1, 1) == "=" then src = sub(src, 2) end
      return src .. ":" .. info.currentline .. ": "
    end
    level = level + 1
  end
end

local function raise(message)
  error(where(2) .. message, 0)
end

-- Stop signals (os.exit, time-outs) are tables that no pcall may swallow.
local stops = setmetatable({}, {__mode = "k"})
local function new_stop(kind, message, code)
  local s = setmetatable({kind = kind, message = message, code = code},
                         {__tostring = function(self) return self.message end})
  stops[s] = true
  return s
end

local function pass_unless_stop(ok, ...)
  if not ok and stops[(...)] then error((...), 0) end
  return ok, ...
end

-- Base library --------------------------------------------------------------

for _, name in native_ipairs{
  "assert", "error", "next", "rawequal", "rawget", "rawlen", "select",
  "tonumber", "tostring", "type", "unpack", "_VERSION",
} do env[name] = _G[name] end

local function is_view(t)
  local mt = dgetmetatable(t)
  return type(mt) == "table" and rawget(mt, "__datastore") == true
end

function env.rawset(t, k, v)
  if is_view(t) then
    error("rawset on a datastore table would bypass its validation; assign with t[k] = v", 2)
  end
  return rawset(t, k, v)
end

function env.setmetatable(t, mt)
  if is_view(t) then error("cannot change the metatable of a datastore table", 2) end
  return setmetatable(t, mt)
end

-- getmetatable("") would hand out the string metatable shared with the host.
function env.getmetatable(v)
  if type(v) == "string" then return nil end
  return getmetatable(v)
end

function env.pcall(f, ...)
  return pass_unless_stop(pcall(f, ...))
end

function env.xpcall(f, handler, ...)
  local function guarded(e)
    if stops[e] then return e end
    return handler(e)
  end
  return pass_unless_stop(xpcall(f, guarded, ...))
end

-- Lua 5.3 semantics on every engine: pairs honours __pairs, ipairs honours
-- __index (LuaJIT's own do neither, and datastore tables rely on both).
if is_luajit then
  function env.pairs(t)
    local mt = dgetmetatable(t)
    local p = type(mt) == "table" and rawget(mt, "__pairs")
    if p then return p(t) end
    return native_pairs(t)
  end
  local function ipairs_step(t, i)
    i = i + 1
    local v = t[i]
    if v ~= nil then return i, v end
  end
  function env.ipairs(t)
    if type(t) ~= "table" then native_ipairs(t) end -- raises the usual message
    return ipairs_step, t, 0
  end
else
  env.pairs, env.ipairs = native_pairs, native_ipairs
end

-- Under LuaJIT with a handler time limit, driver code is never compiled to machine code:
-- compiled loops skip the hook that stops a runaway handler. hubrt's own modules are (they
-- run no driver loop), which is most of what a command runs. Every function of the chunk.
local interpret = host.interpret_driver_code and function(f) jit.off(f, true) return f end or nil

-- Text chunks only: a binary chunk (bytecode) can break the VM's invariants.
function env.load(chunk, name, mode, chunk_env)
  local f, err = native_load(chunk, name or "=(load)", "t", chunk_env or env)
  if f and interpret then interpret(f) end
  return f, err
end

function env.print(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  host.print(table.concat(parts, "\t"))
end

-- Libraries ---------------------------------------------------------------

env.string = copy(string)
env.table = copy(table)
env.math = copy(math)
env.coroutine = copy(coroutine)
if bit then env.bit = copy(bit) end
if utf8 then env.utf8 = copy(utf8) end

function env.coroutine.resume(co, ...)
  return pass_unless_stop(coroutine.resume(co, ...))
end

-- debug: what the platform's own drivers use of it (a traceback, where a log line comes from), and
-- nothing that reaches past the sandbox: getinfo never hands out a function (its `func` field) or a
-- thread's active lines; no hooks, locals, upvalues, metatables or registry. A level counts from
-- the caller, as if these were the library's own functions.
local native_getinfo = debug.getinfo
-- A thread other than the running one, or nil (the running one: its levels pass this function).
local function other_thread(v)
  if type(v) == "thread" and v ~= coroutine.running() then return v end
end
env.debug = {}
function env.debug.traceback(...)
  local thread, message, level = ...
  if other_thread(thread) then return traceback(thread, message, level) end
  if type(thread) == "thread" then message, level = select(2, ...) else message, level = ... end
  if message ~= nil and type(message) ~= "string" and type(message) ~= "number" then return message end
  local text = traceback(message, (level or 1) + 1)
  return text -- (not a tail call: LuaJIT would drop this frame, and the level would be off by one)
end
function env.debug.getinfo(...)
  local thread, f, what = ...
  if not other_thread(thread) then
    if type(thread) == "thread" then f, what = select(2, ...) else f, what = ... end
    thread = nil
    if type(f) == "number" then f = f + 1 end -- (past this function)
  end
  if what ~= nil and type(what) ~= "string" then
    error("bad argument to 'getinfo' (string expected, got " .. type(what) .. ")", 2)
  end
  what = what and what:gsub("[fL>]", "") or "nSlu"
  if thread then return native_getinfo(thread, f, what) end
  local info = native_getinfo(f, what)
  return info -- (not a tail call, as above)
end

-- One hook serves two purposes: a deadline for the running handler (a count
-- hook) and, when asked for, line coverage of the driver's own files (a line
-- hook). On standard Lua a hook belongs to one coroutine, so every coroutine
-- driver code creates gets it too.
local HOOK_COUNT = 10000
-- While a handler runs under a time limit: its name and seconds, and when it ends (CPU time).
-- The clock is first read by the hook, not when the limit starts: reading it is a system call,
-- and most handlers are over before the hook first runs (so a limit counts from the handler's
-- first HOOK_COUNT instructions, a fraction of a millisecond).
local limit_name, limit_seconds, deadline
local coverage -- chunk name -> {[line] = true}, when line coverage is on

local function hook(event, line)
  if event == "line" then
    local src = getinfo(2, "S").source
    if sub(src, 1, 1) == "@" and sub(src, 1, 9) ~= "@[hubrt]/" then
      local lines = coverage[src]
      if not lines then
        lines = {}
        coverage[src] = lines
      end
      lines[line] = true
    end
  elseif limit_name then
    local now = os.clock()
    if deadline == nil then
      deadline = now + limit_seconds
    elseif now > deadline then
      local message = string.format("%s ran for more than %g s and was stopped", limit_name, limit_seconds)
      limit_name, deadline = nil, nil
      error(new_stop("timeout", where(1) .. message), 0)  -- where: the line it was running
    end
  end
end

-- Once a time limit is used the count hook stays installed (installing a hook costs more than
-- running it: LuaJIT re-patches its dispatch table), and the hook does nothing while no limit runs.
local armed = false
local hooked = setmetatable({}, {__mode = "k"}) -- "all" (LuaJIT: one hook for every coroutine),
                                                -- or the Lua 5.3 coroutines ("main") that have it

local function set_hook(co)
  local mask, count = coverage and "l" or "", (armed or limit_name) and HOOK_COUNT or 0
  if mask == "" and count == 0 then
    if co then debug.sethook(co) else debug.sethook() end
  elseif co then
    debug.sethook(co, hook, mask, count)
  else
    debug.sethook(hook, mask, count)
  end
end

-- Under LuaJIT a thread of the host watches each turn from outside (hubrt/watchdog.py) and
-- installs this hook only once a turn has overrun its limit: until then no hook slows the
-- interpreter down. `watch` is the record shared with it: [0] the running turn's number,
-- [1] its limit in seconds (0: none runs), [2] the number of a turn it found overdue.
local watch

local function watched_hook()
  debug.sethook(watched_hook, "", 0) -- off again (the function stays, for the watchdog's next call)
  if limit_name and watch[2] == watch[0] then
    local message = string.format("%s ran for more than %g s and was stopped", limit_name, limit_seconds)
    limit_name, watch[1] = nil, 0
    error(new_stop("timeout", where(1) .. message), 0)  -- where: the line it was running
  end
end

local function arm(co)
  armed = true
  local key = is_luajit and "all" or (co or "main")
  if not hooked[key] then
    hooked[key] = true
    set_hook(co)
  end
end

function env.coroutine.create(f)
  local co = coroutine.create(f)
  if coverage or armed then
    set_hook(co)
    hooked[co] = true
  end
  return co
end

function env.coroutine.wrap(f)
  local co = env.coroutine.create(f)
  local function pass(ok, ...)
    if not ok then error((...), 0) end
    return ...
  end
  return function(...) return pass(coroutine.resume(co, ...)) end
end

-- Driver code reads the hub's clock: under a virtual clock (scenarios, tests)
-- os.time() moves with the hub's time, so timestamps and timers agree, as they
-- do on a real hub. `clock_now` is set by the host (helpers.set_clock).
local native_time, native_date, floor = os.time, os.date, math.floor
local clock_now = native_time
env.os = {clock = os.clock, difftime = os.difftime}
-- Calls a library function on behalf of the driver: an error it raises names the
-- driver's line and the function as the driver called it, not this file.
local function for_driver(name, f, ...)
  local function pass(ok, ...)
    if ok then return ... end
    local msg = tostring((...)):gsub("^[^:]*:%d+: ", ""):gsub("to '[^']*'", "to '" .. name .. "'", 1)
    raise(msg)
  end
  return pass(pcall(f, ...))
end
function env.os.time(t)
  if t == nil then return floor(clock_now()) end
  return for_driver("os.time", native_time, t)
end
function env.os.date(format, t)
  if t == nil then t = floor(clock_now()) end
  return for_driver("os.date", native_date, format, t)
end
function env.os.exit(code)
  error(new_stop("exit", "driver called os.exit(" .. tostring(code) .. ")", code), 0)
end

if is_luajit then
  host.compat53(env)
end

-- require: runtime modules and the driver's own src/, nothing else ---------

local loaded = {}
local preload = {}
local runtime_api -- what hubrt's own modules (st.*, log) get as their second argument

function env.require(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
  end
  local m = loaded[name]
  if m ~= nil then return m end
  if preload[name] then
    m = preload[name](name)
  else
    -- the module compiled, nil and whether it is a "runtime" module; or nil, an error and "missing" or "syntax"
    local f, err, what = host.find_module(name)
    if not f then
      if what == "missing" then raise(err) end
      error(err, 0)
    end
    if what == "runtime" then m = f(name, runtime_api) else m = f(name) end
  end
  if m == nil then m = true end
  loaded[name] = m
  return m
end

-- _envlibrequire(name): the hub's native libraries, as drivers reach them past a module of their
-- own of the same name (a driver's log.lua wrapping the hub's log).
local NATIVE = {log = "log", datastore = "datastore", json = "st.json", socket = "cosock.socket",
                timer = "cosock.timer"}
local native_loaded = {}
function env._envlibrequire(name)
  local module = NATIVE[name]
  if module == nil then raise("_envlibrequire: hubrt has no native library " .. tostring(name)) end
  if preload[module] then return env.require(module) end
  local _, _, what = host.find_module(module)
  if what == "runtime" then return env.require(module) end -- the driver has none of its own: the same table
  local m = native_loaded[module]
  if m == nil then
    local f, err = host.find_module(module, true)
    if not f then error(err, 0) end
    m = f(module, runtime_api)
    native_loaded[module] = m
  end
  return m
end

env._G = env

-- Privileged helpers for the host ------------------------------------------

local helpers = {}
helpers.interpret = interpret

-- The error handler of protected calls: a stop passes as it is, any other error becomes
-- its message and the traceback where it was raised.
local function on_error(e)
  if stops[e] then return e end
  local msg = tostring(e)
  return {message = msg, traceback = traceback(msg, 2)}
end

-- false, kind, message, traceback for what on_error caught.
local function failure(e)
  if stops[e] then return false, e.kind, e.message, "" end
  if type(e) ~= "table" then -- the handler itself failed: out of memory
    local msg = tostring(e)
    return false, msg == "not enough memory" and "memory" or "error", msg, ""
  end
  return false, "error", e.message, e.traceback
end

-- Runs f under xpcall; returns true, results... or false, kind, message, traceback.
local function protected_result(ok, ...)
  if ok then return true, ... end
  return failure((...))
end

function helpers.protected_call(f, ...)
  return protected_result(xpcall(f, on_error, ...))
end

function helpers.preload(name, loader) preload[name] = loader end

-- What os.time() answers: a function giving seconds since the epoch.
function helpers.set_clock(now) clock_now = now end

-- After an out-of-memory error the garbage stays until the next cycle.
function helpers.collect_garbage() collectgarbage("collect") end

-- A deep copy of a value through pairs, as driver code sees its tables (a datastore table's
-- contents, not its empty proxy): what Python reads when a driver hands it a table. nil and why
-- for a table that contains itself or is nested deeper than anything could be saved.
local PLAIN_DEPTH = 200
local function plain_copy(value, active, depth)
  if type(value) ~= "table" then return value end
  if active[value] then error({plain = "a table that contains itself"}, 0) end
  if depth > PLAIN_DEPTH then error({plain = "tables nested deeper than " .. PLAIN_DEPTH .. " levels"}, 0) end
  active[value] = true
  local out = {}
  for k, v in env.pairs(value) do out[plain_copy(k, active, depth + 1)] = plain_copy(v, active, depth + 1) end
  active[value] = nil
  return out
end

function helpers.plain(value)
  local ok, result = pcall(plain_copy, value, {}, 0)
  if ok then return result end
  if type(result) == "table" and result.plain then return nil, result.plain end
  error(result, 0) -- the driver's own __pairs failed, or a stop: it goes on up
end

helpers.where = where
helpers.raise = raise

-- Tasks: the scheduler is cosock's (lua/cosock/init.lua), which hands the sandbox its
-- entry points when it is loaded; the sandbox lends it the handler time limit for each
-- turn a task gets.
local scheduler -- {run = runs every runnable task until all wait, fire = a hub timer went off}
local task_seconds = 0 -- the time limit of each task's turn (--handler-timeout; 0: none)
local dispatch_name -- what the hub's current dispatch is, as its errors name it

local function start_deadline(seconds, name, co)
  if seconds > 0 then
    limit_name, limit_seconds, deadline = name, seconds, nil
    if watch then
      watch[0], watch[1] = watch[0] + 1, seconds
    else
      arm(co)
    end
  end
end

local function end_deadline(...)
  limit_name, deadline = nil, nil
  if watch then watch[1] = 0 end
  return ...
end

local function run_scheduler()
  end_deadline()
  if scheduler then scheduler.run() end
end

local function dispatch_then_run(f, ...)
  f(...)
  run_scheduler()
end

-- Calls f like protected_call, stopping it if it runs longer than `seconds`
-- (0: no limit); then every task f made runnable runs until all of them wait
-- (each turn under the same limit). A stop passes through every pcall in driver code.
function helpers.dispatch(seconds, name, f, ...)
  task_seconds, dispatch_name = seconds, name
  start_deadline(seconds, name)
  return end_deadline(helpers.protected_call(f == nil and run_scheduler or dispatch_then_run, f, ...))
end

-- The hub's messages that were waiting together, in one call from the worker: each one is
-- dispatched exactly as `dispatch` does it (its tasks run before the next message), and
-- `done(ok, kind, message, traceback)` hears how it ended, in order. `calls` is flat:
-- name, driver method, number of arguments, the arguments; then the next message.
local unpack = table.unpack or unpack
function helpers.dispatch_all(seconds, driver, calls, done)
  local i = 1
  while calls[i] ~= nil do
    local name, n = calls[i], calls[i + 2]
    done(helpers.dispatch(seconds, name, driver[calls[i + 1]], driver, unpack(calls, i + 3, i + 2 + n)))
    i = i + 3 + n
  end
end

-- Runs the tasks that are runnable (those the main chunk made, once driver:run() is reached).
function helpers.run_tasks(seconds, name)
  return helpers.dispatch(seconds, name, nil)
end

function helpers.enable_coverage()
  coverage = {}
  if watch then -- the line hook is installed for good: the time limit goes back to it
    watch[1] = 0
    watch = nil
  end
  set_hook()
end

-- The watchdog's side: the record's address; answers the address of a thread of this state,
-- with the hook set if asked so that its C function can be read (`watch_ready` takes it off,
-- and gives the limit back to the always-on hook when the watchdog cannot set one).
local watch_record, watch_anchor -- (what holds the record's memory; a thread of this state, any will do)
function helpers.watch_turns(address, record, show_hook)
  watch, watch_record = require("ffi").cast("double *", address), record
  watch_anchor = coroutine.create(function() end)
  debug.sethook(watched_hook, "", show_hook and 1e9 or 0) -- (registered for the watchdog either way)
  return tostring(watch_anchor)
end

function helpers.watch_ready(watched)
  debug.sethook(watched_hook, "", 0)
  if not watched then watch, watch_record, watch_anchor = nil, nil, nil end
end

-- The lines hit so far ({chunk name = {line, ...}}), and a fresh start.
function helpers.take_coverage()
  local taken = {}
  for src, lines in pairs(coverage or {}) do
    local list = {}
    for line in pairs(lines) do list[#list + 1] = line end
    taken[src] = list
  end
  if coverage then coverage = {} end
  return taken
end

-- The driver's main chunk runs as a coroutine: driver:run() yields it back
-- to the hub, and the hub resumes it at shutdown so that run() returns.
local main
-- What start_main and resume_main return (after true) while driver:run() holds the main chunk.
local RUNNING = "hubrt: the main chunk is inside driver:run()"
helpers.RUNNING = RUNNING
function helpers.start_main(f, seconds, name)
  main = coroutine.create(function() return helpers.protected_call(f) end)
  if coverage then set_hook(main) end
  return helpers.resume_main(seconds, name)
end

local in_run = false -- the main chunk is suspended inside driver:run() (not in a stray yield)
-- Runs the main chunk until driver:run() (or its end), stopping it if it runs longer than
-- `seconds` (0: no limit), as a handler would be: from its start, and after driver:run() returns.
function helpers.resume_main(seconds, name)
  local function after(ok, ...)
    if not ok then return false, "error", tostring((...)), "" end
    if coroutine.status(main) == "suspended" then
      if in_run then return true, RUNNING end
      local msg = "coroutine.yield() in the main chunk, outside any coroutine of the driver's own"
      return false, "error", msg, traceback(main, msg)
    end
    return ...
  end
  in_run = false
  start_deadline(seconds, name, main)
  return end_deadline(after(coroutine.resume(main)))
end

-- `host` functions from Python, plus the privileged ones, for hubrt's modules.
function helpers.set_runtime_api(api)
  api.raise = raise
  api.where = where
  function api.line_of(f) return getinfo(f, "S").linedefined end
  function api.run(driver)
    if coroutine.running() ~= main or main == nil then
      raise("driver:run() must be called from the driver's main chunk (src/init.lua) under hubrt run")
    end
    api.register(driver)
    in_run = true
    coroutine.yield()
  end
  -- for the scheduler (cosock)
  function api.install_scheduler(entry_points) scheduler = entry_points end
  function api.fire_timer(id) if scheduler then scheduler.fire(id) end end
  -- One turn of a task, under the handler time limit named `what`; coroutine.resume's results.
  function api.resume(co, what, ...)
    start_deadline(task_seconds, what, co)
    return end_deadline(coroutine.resume(co, ...))
  end
  -- The running task starts new work within its turn: the limit starts again, under a new name.
  function api.new_turn(what)
    if limit_name then
      limit_name, deadline = what, nil
      if watch then watch[0] = watch[0] + 1 end
    end
  end
  -- The kind of a stop (os.exit: "exit", a time limit: "timeout"), nil for any other error.
  function api.stop_kind(e) return stops[e] and e.kind or nil end
  function api.traceback(co, message) return traceback(co, message) end
  -- Like protected_call, but a stop goes on up (it ends the task that runs f).
  local function try_result(ok, e)
    if ok then return true end
    if stops[e] then error(e, 0) end
    return failure(e)
  end
  function api.try(f, ...)
    return try_result(xpcall(f, on_error, ...))
  end
  function api.gettime() return clock_now() end
  function api.dispatch_name() return dispatch_name end
  runtime_api = api
end

return env, helpers
