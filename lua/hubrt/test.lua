-- `require "hubrt.test"`: tests for a driver, in Lua, next to the driver
-- (src/test/test_*.lua), run by pytest (each test is one pytest item) or
-- `hubrt test`. Every test gets a fresh hub and store with the driver under
-- test installed, and can restart that hub in each of the three ways.
--
--   local test = require "hubrt.test"
--   local hub = test.hub
--   test("level survives a driver crash", function()
--     local lamp = hub.add_device{profile = "dimmer", label = "Lamp"}
--     hub.command(lamp, "switchLevel", "setLevel", {40})
--     hub.restart("driver_crash")
--     test.equal(hub.state(lamp, "switchLevel", "level"), 40)
--   end)
local _, host = ...

local test = {}
local hub = {}
test.hub = hub

-- The hub's functions and their parameters ("name:type", "?" when it may be
-- nil). A wrong argument is an error at the test's own line, as is a refusal
-- from the hub.
local SIGNATURES = {
  add_device = {"options:table"},
  remove_device = {"device:string"},
  update_device = {"device:string", "options:table?"},
  command = {"device:string", "capability:string", "command:string", "args:table?", "component:string?"},
  lifecycle = {"device:string", "event:string"},
  discover = {"driver:string?"},
  advance = {"seconds:number"},
  restart = {"kind:string"},
  flush = {},
  events = {"device:string?"},
  clear_events = {},
  logs = {"level:string?"},
  datastore = {"driver:string?"},
  device = {"device:string"},
  field = {"device:string", "name:string"},
  state = {"device:string", "capability:string", "attribute:string", "component:string?"},
  fatal_errors = {"on:boolean?"},
  -- the simulated LAN: hosts (with HTTP routes, an SSDP answer), faults, what drivers sent
  lan_host = {"options:table"},
  lan_fault = {"ip:string", "fault:string?"},
  lan_move = {"ip:string", "new_ip:string"},
  lan_remove = {"ip:string"},
  lan_requests = {"ip:string?"},
  lan_sent = {"ip:string?"},
  lan_push = {"ip:string", "path:string", "text:string", "raw:boolean?"},
  lan_close = {"ip:string", "code:number?", "reason:string?"},
  lan_drop = {"ip:string"},
  set_hub_ip = {"ip:string"},
  lan_notify = {"ip:string", "body:string"},
}

-- {name, type, may be nil} for each parameter of a signature
local function parse(signature)
  local params = {}
  for i, param in ipairs(signature) do
    local name, expected, optional = param:match("^([%w_]+):(%a+)(%??)$")
    assert(name, "hubrt.test: a bad signature " .. param)
    params[i] = {name, expected, optional == "?"}
  end
  return params
end

local function check_arguments(fname, params, ...)
  for i, param in ipairs(params) do
    local name, expected, optional = param[1], param[2], param[3]
    local value = select(i, ...)
    if type(value) ~= expected and not (optional and value == nil) then
      host.raise(string.format("hub.%s: %s must be a %s%s, got %s", fname, name, expected,
                               optional and " or nil" or "", type(value)))
    end
  end
end

local unpack = table.unpack or unpack
-- (Each is looked up and parsed at its first call: a test file's state is made for every test,
-- and most tests call a few of these.)
for fname, signature in pairs(SIGNATURES) do
  local fn, params
  hub[fname] = function(...)
    if params == nil then fn, params = host[fname], parse(signature) end
    check_arguments(fname, params, ...)
    local result, err = fn(unpack({...}, 1, #params)) -- every parameter, nil or not
    if err ~= nil then host.raise(err) end
    return result
  end
end

local advance = hub.advance
function hub.advance(seconds)
  if type(seconds) == "number" and not (seconds >= 0 and seconds < math.huge) then
    host.raise("hub.advance: seconds must be a number >= 0 (time only moves forward), got " .. tostring(seconds))
  end
  return advance(seconds)
end

-- Declaring tests ------------------------------------------------------------

-- Kept here, in Lua, and handed to the host once: the host runs one test of the
-- file by name, so declaring stays cheap however many tests a file holds. The file's
-- top level runs again before each test; then only the test that runs is kept (every
-- declaration was checked when the file's tests were collected).
local declared, by_name, setups = {}, {}, {}
local only = host.declare(declared, by_name, setups) -- the test about to run; nil while collecting

local function declare(name, fn, skip_reason)
  if only ~= nil and name ~= only then return end
  if type(name) ~= "string" or type(fn) ~= "function" then
    host.raise("test(name, function() ... end) takes a name and a function")
  end
  -- the name becomes part of a pytest node id (file.lua::name), shown on one line
  if name == "" or name:find("%c") or name:find("::", 1, true) or not utf8.len(name) then
    local shown = name:gsub("%c", function(c) return "\\" .. c:byte() end)
    host.raise('test name "' .. shown .. '": a test needs a name of UTF-8 text on one line, without \'::\'')
  end
  if by_name[name] then
    host.raise(string.format("a second test named %q (the first is at line %d)", name, by_name[name].line))
  end
  local t = {name = name, fn = fn, line = host.line_of(fn), skip = skip_reason}
  declared[#declared + 1] = t
  by_name[name] = t
end

function test.setup(fn)
  if type(fn) ~= "function" then host.raise("test.setup(function() ... end) takes a function") end
  setups[#setups + 1] = fn
end
function test.skip(name, fn, reason) declare(name, fn, reason or "skipped") end

-- Assertions -----------------------------------------------------------------

local function show(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local sorted_keys = require("hubrt.tables").sorted_keys

local function key_path(path, k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return path .. "." .. k end
  return path .. "[" .. show(k) .. "]"
end

-- Lists the differences between two values, by path.
-- `seen` holds the pairs of tables already being compared, so that cycles end.
local function diff(actual, expected, path, out, seen)
  if type(actual) == "table" and type(expected) == "table" then
    seen = seen or {}
    local against = seen[actual] or {}
    if against[expected] then return out end
    against[expected] = true
    seen[actual] = against
    for _, k in ipairs(sorted_keys(expected)) do
      local p = key_path(path, k)
      if actual[k] == nil then
        out[#out + 1] = p .. ": missing (expected " .. show(expected[k]) .. ")"
      else
        diff(actual[k], expected[k], p, out, seen)
      end
    end
    for _, k in ipairs(sorted_keys(actual)) do
      if expected[k] == nil then out[#out + 1] = key_path(path, k) .. ": unexpected " .. show(actual[k]) end
    end
  elseif actual ~= expected then
    out[#out + 1] = (path == "" and "value" or path) .. ": expected " .. show(expected) .. ", got " .. show(actual)
  end
  return out
end

function test.equal(actual, expected, message)
  local differences = diff(actual, expected, "", {})
  if #differences > 0 then
    host.raise((message and message .. ": " or "") .. "not equal\n  " .. table.concat(differences, "\n  "))
  end
end

function test.not_equal(actual, expected, message)
  if #diff(actual, expected, "", {}) == 0 then
    host.raise((message and message .. ": " or "") .. "expected a value other than " .. show(expected))
  end
end

function test.truthy(value, message)
  if not value then host.raise(message or ("expected a true value, got " .. show(value))) end
end

function test.falsy(value, message)
  if value then host.raise(message or ("expected false or nil, got " .. show(value))) end
end

function test.fail(message) host.raise(message or "failed") end

-- fn must raise an error whose message matches the Lua pattern.
function test.expect_error(pattern, fn)
  if type(pattern) ~= "string" or type(fn) ~= "function" then
    host.raise("test.expect_error(pattern, function() ... end) takes a Lua pattern and a function")
  end
  local valid, bad = pcall(string.find, "", pattern)
  if not valid then host.raise("test.expect_error: bad pattern " .. show(pattern) .. ": " .. tostring(bad)) end
  local ok, err = pcall(fn)
  if ok then host.raise("expected an error matching " .. show(pattern) .. ", but there was none") end
  if not tostring(err):find(pattern) then
    host.raise("expected an error matching " .. show(pattern) .. ", got " .. show(tostring(err)))
  end
  return err
end

-- An event the device emitted, matching every field given (device, capability, attribute, value, ...).
function test.assert_event(match)
  local events = hub.events()
  for i = #events, 1, -1 do
    local ok = true
    for k, v in pairs(match) do
      if events[i][k] ~= v then ok = false end
    end
    if ok then return events[i] end
  end
  local seen = {}
  for _, e in ipairs(events) do
    seen[#seen + 1] = string.format("%s %s.%s = %s", e.device, e.capability, e.attribute, show(e.value))
  end
  host.raise("no event matches " .. show(require("st.utils").stringify_table(match)) .. "; events:\n  "
             .. (#seen > 0 and table.concat(seen, "\n  ") or "(none)"))
end

function test.assert_log(level, pattern)
  for _, record in ipairs(hub.logs(level)) do
    if record.text:find(pattern) then return record end
  end
  host.raise("no " .. level .. " log matches " .. show(pattern))
end

return setmetatable(test, {__call = function(_, name, fn) declare(name, fn, nil) end})
