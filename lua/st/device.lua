-- Device objects, as drivers get them from the driver object. Fields are
-- read-only; data goes through set_field/get_field. Persisted fields live in
-- the seed's layout, driver.datastore["__" .. device.id], so they are saved
-- and restored with the driver's datastore; the last emitted state of each
-- attribute is kept there too, under __state_cache.
local _, host = ...

local Thread = require "st.thread"

local Device = {}
local methods = {}
local fields_of = setmetatable({}, {__mode = "k"})
local extensions_of = setmetatable({}, {__mode = "k"})

-- device.log.info(...) and the rest: the hub's log stream, about this device.
local new_logger = require "hubrt.logger"
local function logger_for(device_id)
  return new_logger(function(level, text) host.device_log(device_id, level, text) end)
end

-- The fields that come from the hub's device record (set again on infoChanged).
local function record_fields(fields, info)
  fields.label = info.label
  fields.vendor_provided_label = info.vendor_provided_label
  fields.profile = info.profile
  fields.preferences = info.preferences or {}
  fields.manufacturer = info.manufacturer
  fields.model = info.model
  fields.parent_device_id = info.parent_device_id
  fields.parent_assigned_child_key = info.parent_assigned_child_key
end

function Device.new(driver, info)
  local key = "__" .. info.id
  if driver.datastore[key] == nil then driver.datastore[key] = {} end
  local fields = {
    id = info.id,
    device_network_id = info.device_network_id,
    persistent_store = driver.datastore[key],
    transient_store = {},
    driver = driver,
    thread = Thread.new(driver, "device " .. tostring(info.label or info.id)),
    log = logger_for(info.id),
  }
  record_fields(fields, info)
  -- device.x: its field, else a method added with extend_device, else the library's method (a
  -- chain of tables, which the VM follows without calling any function: it is on every method call)
  local extensions = setmetatable({}, {__index = methods})
  setmetatable(fields, {__index = extensions})
  local device = setmetatable({}, {
    __index = fields,
    __newindex = function(_, k)
      host.raise("device." .. tostring(k) .. " is read-only; store data with device:set_field(key, value)")
    end,
    __tostring = function() return "<Device " .. tostring(fields.label) .. " (" .. fields.id .. ")>" end,
  })
  fields_of[device] = fields
  extensions_of[device] = extensions
  return device
end

-- Takes new hub-side info (infoChanged); returns the old values for args.old_st_store.
function methods:_update(info)
  local fields = fields_of[self]
  local old = {label = fields.label, preferences = fields.preferences, profile = fields.profile,
               manufacturer = fields.manufacturer, model = fields.model}
  record_fields(fields, info)
  return old
end

function methods:get_model() return self.model end
function methods:get_manufacturer() return self.manufacturer end

function methods:get_parent_device()
  local parent = self.parent_device_id
  if parent == nil then return nil end
  return self.driver:get_device_info(parent)
end

function methods:get_child_list()
  local children = {}
  for _, device in ipairs(self.driver:get_devices()) do
    if device.parent_device_id == self.id then children[#children + 1] = device end
  end
  return children
end

function methods:get_child_by_parent_assigned_key(key)
  for _, child in ipairs(self:get_child_list()) do
    if child.parent_assigned_child_key == key then return child end
  end
  return nil
end

-- Asks the hub to change the device's profile (or label, model...): it answers with infoChanged.
function methods:try_update_metadata(metadata)
  local problem = host.update_metadata(self.id, metadata)
  if problem then host.raise(problem) end
end

-- Adds a method to this device object (as the hub's library does for sub-drivers' helpers).
function methods:extend_device(name, fn)
  if type(name) ~= "string" or type(fn) ~= "function" then
    host.raise("extend_device(name, fn): a method name and a function")
  end
  extensions_of[self][name] = fn
end

function methods:set_field(key, value, opts)
  local fields = fields_of[self]
  if type(opts) == "table" and opts.persist then
    fields.persistent_store[key] = value -- validated like any datastore write
    fields.transient_store[key] = nil
  else
    fields.transient_store[key] = value
    -- a stale persisted value must not come back after a restart
    if fields.persistent_store[key] ~= nil then fields.persistent_store[key] = nil end
  end
end

function methods:get_field(key)
  local fields = fields_of[self]
  local value = fields.transient_store[key]
  if value ~= nil then return value end
  return fields.persistent_store[key]
end

local function capability_id(cap)
  if type(cap) == "table" then return cap.ID end
  return cap
end

function methods:component_exists(component_id)
  return self.profile.components[component_id] ~= nil
end

function methods:component_count()
  local n = 0
  for _ in pairs(self.profile.components) do n = n + 1 end
  return n
end

function methods:pretty_print() return tostring(self) end

-- A parent's own way to find a child from a protocol endpoint (kept as a transient field, as the
-- hub's library keeps it).
function methods:set_find_child(find_child)
  self:set_field("__find_child_fn", find_child)
end

-- What a profile's components support, found once per profile (every event asks):
-- {[component id or true for any] = {[capability id] = true}}.
local supported = setmetatable({}, {__mode = "k"})

local function supported_by(components)
  local found = supported[components]
  if found == nil then
    found = {[true] = {}}
    for id, component in pairs(components) do
      local here = {}
      for _, cap in ipairs(component.capabilities) do
        here[cap.id] = true
        found[true][cap.id] = true
      end
      found[id] = here
    end
    supported[components] = found
  end
  return found
end

function methods:supports_capability_by_id(cap_id, component_id)
  local here = supported_by(self.profile.components)[component_id == nil or component_id]
  return here ~= nil and here[cap_id] == true
end

function methods:supports_capability(cap, component_id)
  return self:supports_capability_by_id(capability_id(cap), component_id)
end

local function plain_copy(value)
  if type(value) ~= "table" then return value end
  local copy = {}
  for k, v in pairs(value) do copy[k] = plain_copy(v) end
  return copy
end

local function subtable(t, key)
  local sub = t[key]
  if sub == nil then
    t[key] = {}
    sub = t[key]
  end
  return sub
end

function methods:emit_component_event(component, event)
  local component_id = type(component) == "table" and component.id or component
  if type(event) ~= "table" or type(event.capability_id) ~= "string" or type(event.state) ~= "table" then
    host.raise("emit_event expects an event made by st.capabilities, e.g. capabilities.switch.switch.on()")
  end
  local cap, attr, state = event.capability_id, event.attribute_id, event.state
  if not self:supports_capability_by_id(cap, component_id) then
    -- the hub's library logs and drops such an event, answering false and why; hubrt says where it came from
    local why = string.format("%s does not support capability %s on component %s: the event %s.%s is not sent",
                              tostring(self), cap, tostring(component_id), cap, tostring(attr))
    host.log("warn", host.where(1) .. why)
    return false, why
  end
  local cache = subtable(subtable(subtable(self.persistent_store, "__state_cache"), component_id), cap)
  local previous = cache[attr]
  local changed = previous == nil or previous.value ~= state.value or previous.unit ~= state.unit
  if previous == nil then
    cache[attr] = {value = plain_copy(state.value), unit = state.unit}
  elseif changed then
    previous.value = plain_copy(state.value)
    if previous.unit ~= state.unit then previous.unit = state.unit end
  end
  host.emit(self.id, component_id, cap, attr, state.value, state.unit, event.state_change or changed)
  return event
end

function methods:emit_event(event)
  return self:emit_component_event("main", event)
end

function methods:get_latest_state(component_id, cap, attribute, default_value, default_state)
  local cache = self.persistent_store.__state_cache
  local entry = cache and cache[component_id] and cache[component_id][capability_id(cap)]
  entry = entry and entry[attribute]
  if entry == nil then return default_value, default_state end
  return entry.value, {value = entry.value, unit = entry.unit}
end

function methods:online() host.set_online(self.id, true) end
function methods:offline() host.set_online(self.id, false) end

return Device
