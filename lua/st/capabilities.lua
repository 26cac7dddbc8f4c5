-- `require "st.capabilities"`: capability objects built from the definitions
-- the hub ships (hubrt/capabilities/standard.json, additions.yml) plus the driver package's
-- own capabilities/ folder. Event constructors check their value against the
-- definition (in the host) and raise an error at the driver's line.
local _, host = ...

local function constructor_name(value)
  return (value:gsub("[^%w]", "_"))
end

local MEMO_LIMIT = 256 -- scalar values remembered as valid, per attribute

local function new_attribute(cap_id, attr_id, schema)
  local attribute = {NAME = attr_id, ID = attr_id, capability = cap_id}
  -- Whether a value fits depends on the definition alone, which does not change while the
  -- driver runs: a scalar value (without a unit) that was found valid once needs no second look.
  local valid, remembered = {}, 0

  local function check(value, unit)
    if schema.type == "any" or (unit == nil and valid[value]) then return end
    local problem = host.check_event(cap_id, attr_id, value, unit)
    if problem then host.raise(problem) end
    local kind = type(value)
    if unit == nil and remembered < MEMO_LIMIT and value == value
        and (kind == "string" or kind == "number" or kind == "boolean") then
      valid[value] = true
      remembered = remembered + 1
    end
  end

  local function event(value, extra)
    local state
    if type(value) == "table" and value.value ~= nil then
      state = {value = value.value, unit = value.unit, data = value.data}
    else
      state = {value = value}
    end
    check(state.value, state.unit)
    local ev = {capability_id = cap_id, attribute_id = attr_id, state = state}
    if type(extra) == "table" then
      ev.state_change = extra.state_change
      ev.visibility = extra.visibility
      if extra.data ~= nil then state.data = extra.data end
    end
    return ev
  end

  -- A value's constructor, as the hub's library gives it: callable, and its NAME is the value
  -- (drivers compare with capabilities.switch.switch.on.NAME).
  local function value_constructor(value)
    return setmetatable({NAME = value}, {__call = function(_, extra) return event(value, extra) end})
  end

  local mt = {__call = function(_, value, extra) return event(value, extra) end}
  if schema.type == "enum" then
    for _, value in ipairs(schema.values) do
      attribute[constructor_name(value)] = value_constructor(value)
    end
  elseif schema.type == "any" then -- nothing is known of its values: a constructor by any value name
    mt.__index = function(self, name)
      if type(name) ~= "string" then return nil end
      local constructor = value_constructor(name)
      rawset(self, name, constructor)
      return constructor
    end
  end
  return setmetatable(attribute, mt)
end

-- What no definition describes: refused under --strict, else let through unchecked
-- with a warning (once) naming the driver's line.
local function unknown_member(cap_id, kind, name)
  local problem = host.unknown_member(cap_id, kind, name, host.where(3))
  if problem then host.raise(problem) end
end

local function new_command(cap_id, name, args)
  return {NAME = name, capability = cap_id, arguments = args}
end

local function new_capability(cap_id, definition)
  local cap = {ID = cap_id, NAME = cap_id, commands = {}}
  for name, args in pairs(definition.commands) do
    cap.commands[name] = new_command(cap_id, name, args)
  end
  for attr_id, schema in pairs(definition.attributes) do
    cap[attr_id] = new_attribute(cap_id, attr_id, schema)
  end
  local permissive = definition.permissive
  setmetatable(cap.commands, {__index = function(commands, name)
    if type(name) ~= "string" then return nil end
    if not permissive then unknown_member(cap_id, "command", name) end
    local command = new_command(cap_id, name, {})
    rawset(commands, name, command)
    return command
  end})
  return setmetatable(cap, {__index = function(self, name)
    if type(name) ~= "string" or name:sub(1, 1) == "_" then return nil end
    if not permissive then unknown_member(cap_id, "attribute", name) end
    local attribute = new_attribute(cap_id, name, {type = "any"})
    rawset(self, name, attribute)
    return attribute
  end})
end

return setmetatable({}, {
  __index = function(self, cap_id)
    local definition = host.capability_definition(cap_id)
    if not definition then host.raise(host.unknown_capability(cap_id)) end
    local cap = new_capability(cap_id, definition)
    rawset(self, cap_id, cap)
    return cap
  end,
})
