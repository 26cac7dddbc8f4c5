-- `require "st.capabilities"`: capability objects built from the definitions
-- the hub ships (hubrt/capabilities/standard.yml) plus the driver package's
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
    if unit == nil and valid[value] then return end
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

  if schema.type == "enum" then
    for _, value in ipairs(schema.values) do
      attribute[constructor_name(value)] = function(extra) return event(value, extra) end
    end
  end
  return setmetatable(attribute, {__call = function(_, value, extra) return event(value, extra) end})
end

local function new_capability(cap_id, definition)
  local cap = {ID = cap_id, NAME = cap_id, commands = {}}
  for name, args in pairs(definition.commands) do
    cap.commands[name] = {NAME = name, capability = cap_id, arguments = args}
  end
  for attr_id, schema in pairs(definition.attributes) do
    cap[attr_id] = new_attribute(cap_id, attr_id, schema)
  end
  return cap
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
