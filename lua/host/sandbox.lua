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

-- Text chunks only: a binary chunk (bytecode) can break the VM's invariants.
function env.load(chunk, name, mode, chunk_env)
  return native_load(chunk, name or "=(load)", "t", chunk_env or env)
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

env.os = {
  time = os.time, clock = os.clock, date = os.date, difftime = os.difftime,
}
function env.os.exit(code)
  error(new_stop("exit", "driver called os.exit(" .. tostring(code) .. ")", code), 0)
end

if is_luajit then
  host.compat53(env)
end

-- require: runtime modules and the driver's own src/, nothing else ---------

local loaded = {}
local preload = {}

function env.require(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
  end
  local m = loaded[name]
  if m ~= nil then return m end
  if preload[name] then
    m = preload[name](name)
  else
    local src, chunkname = host.find_module(name)
    if not src then error(chunkname, 2) end
    local f, err = native_load(src, chunkname, "t", env)
    if not f then error(host.explain_syntax_error(err, src), 0) end
    m = f(name)
  end
  if m == nil then m = true end
  loaded[name] = m
  return m
end

env._G = env

-- Privileged helpers for the host ------------------------------------------

local helpers = {}

-- Runs f under xpcall; returns true, results... or false, kind, message, traceback.
function helpers.protected_call(f, ...)
  local function handler(e)
    if stops[e] then return e end
    local msg = tostring(e)
    return {message = msg, traceback = traceback(msg, 2)}
  end
  local function unpack_result(ok, ...)
    if ok then return true, ... end
    local e = ...
    if stops[e] then return false, e.kind, e.message, "" end
    if type(e) ~= "table" then -- the handler itself failed: out of memory
      local msg = tostring(e)
      return false, msg == "not enough memory" and "memory" or "error", msg, ""
    end
    return false, "error", e.message, e.traceback
  end
  return unpack_result(xpcall(f, handler, ...))
end

function helpers.compile(src, chunkname)
  local f, err = native_load(src, chunkname, "t", env)
  return f, err
end

function helpers.preload(name, loader) preload[name] = loader end

-- After an out-of-memory error the garbage stays until the next cycle.
function helpers.collect_garbage() collectgarbage("collect") end

return env, helpers
