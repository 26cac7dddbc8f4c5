-- The Lua half of `require "datastore"` (the Python half is hubrt/datastore.py).
--
-- A datastore table is a *view*: a raw-empty proxy whose values live in a
-- hidden backing table, so every assignment, at any depth, reaches
-- __newindex. __newindex hands the key and value to the Python validator and
-- persister of that view (`write`), then stores the value if it was accepted.
-- Reads never leave Lua: __index is the backing table itself.
--
-- Called once per driver with `bridge` (Python callbacks); returns the
-- helpers that Python uses to turn tables into views.

local bridge = ...
local where = bridge.where

local next, type, error, tostring, setmetatable = next, type, error, tostring, setmetatable
local rawset, rawget, dgetmetatable = rawset, rawget, debug.getmetatable
local sub, find = string.sub, string.find

local view_ids = setmetatable({}, {__mode = "k"})

local function describe(v)
  return tostring(v) .. " is of unsupported type " .. type(v)
end

-- Completes a message from Python in which "\0" stands for the description
-- of the assigned key ("k") or value ("v").
local function complete(msg, subject, k, v)
  if not subject then return msg end
  local i = find(msg, "\0", 1, true)
  local x = v
  if subject == "k" then x = k end
  return sub(msg, 1, i - 1) .. describe(x) .. sub(msg, i + 1)
end

-- pairs() on a view: an iterator that closes over the backing table, so that neither
-- the table nor anything else of the view's internals is ever handed to driver code
-- (pairs returns its iterator's state: `next, b` would give out b, whose writes skip
-- validation).
local function view_pairs(b)
  return function(_, k) return next(b, k) end, nil, nil
end

-- `reserved`, for the top-level table only, holds the datastore's method names.
local function make_view(t, write, id, b, reserved)
  view_ids[t] = id
  setmetatable(t, {
    __datastore = true,
    __index = b,
    __newindex = function(_, k, v)
      if reserved and reserved[k] ~= nil then
        error(where(2) .. "Key: " .. tostring(k) .. " refers to a protected method, do not overwrite.", 0)
      end
      local status, msg, replacement = write(k, v)
      if status ~= nil then
        if not status then error(where(2) .. complete(msg, replacement, k, v), 0) end
        if msg ~= nil then bridge.warn(where(2) .. msg) end
        if replacement ~= nil then v = replacement end
      end
      b[k] = v
    end,
    __pairs = function() return view_pairs(b) end,
    __metatable = false,
  })
  return t
end

local api = {}

-- What Python needs to know about a table it is about to validate:
-- 1, id for a view; 2 for a table with a metatable of its own; 0, identity
-- otherwise.
function api.inspect(t)
  local id = view_ids[t]
  if id then return 1, id end
  if dgetmetatable(t) ~= nil then return 2, nil end
  return 0, tostring(t)
end

function api.describe_value(t, k)
  return describe(rawget(t, k))
end

function api.describe_bad_key(t)
  for k in next, t do
    local kt = type(k)
    if kt ~= "string" and kt ~= "number" then return describe(k) end
  end
end

-- Turns the driver's own table into a view, in place (the hub does the same:
-- later writes through the driver's reference are validated and persisted).
-- `replacements` holds values that must be stored instead of the raw ones.
function api.adopt(t, write, id, replacements)
  local b = {}
  for k, v in next, t do b[k] = v end
  for k in next, b do rawset(t, k, nil) end
  if replacements then
    for k, v in next, replacements do b[k] = v end
  end
  make_view(t, write, id, b)
  return b
end

function api.new_view(write, id, b)
  return make_view({}, write, id, b)
end

-- The top-level datastore table: a view whose misses fall through to the
-- datastore methods.
local root_backing = {}
local root

local methods = {}
function methods.init() return root end
function methods.save() bridge.save() end
function methods._force_save() bridge.force_save() end
function methods.is_dirty() return bridge.is_dirty() end
function methods.commit() return bridge.commit() end
function methods.load() bridge.load() return root end
setmetatable(root_backing, {__index = methods})

function api.make_root(write, id)
  root = make_view({}, write, id, root_backing, methods)
  return root, root_backing
end

-- Replaces the root's contents (loading a snapshot).
function api.fill_root(values)
  for k in next, root_backing do root_backing[k] = nil end
  for k, v in next, values do root_backing[k] = v end
end

api.module = {init = methods.init}

return api
