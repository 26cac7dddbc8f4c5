-- `require "st.driver"`: Driver(name, template), shaped like the hub's own
-- library so that drivers written for the hub run unchanged. The hub (Python)
-- calls the `_on_*` methods to deliver events; each queues its work on a
-- thread (st.thread: the device's, or the driver's own), and the work runs as
-- cosock tasks before the call returns, unless it waits on something.
local _, host = ...

local Device = require "st.device"
local Thread = require "st.thread"
local cosock = require "cosock"
local log = require "log"

local Driver = {}
Driver.__index = Driver

-- The most specific handler: a matching sub-driver's (depth first), else the level's own.
local function find_handler(level, driver, device, group, key, subkey)
  for _, sub in ipairs(level.sub_drivers or {}) do
    if type(sub.can_handle) ~= "function" or sub.can_handle({}, driver, device) then
      local handler = find_handler(sub, driver, device, group, key, subkey)
      if handler then return handler end
    end
  end
  local handlers = level[group]
  local handler = type(handlers) == "table" and handlers[key] or nil
  if subkey ~= nil then handler = type(handler) == "table" and handler[subkey] or nil end
  if type(handler) == "function" then return handler end
  return nil
end

local function new_driver(name, template)
  if type(name) ~= "string" then host.raise("Driver(name, template): the name must be a string") end
  if template ~= nil and type(template) ~= "table" then
    host.raise("Driver(name, template): the template must be a table")
  end
  local driver = setmetatable({}, Driver)
  for k, v in pairs(template or {}) do driver[k] = v end
  driver.NAME = name
  driver.capability_handlers = driver.capability_handlers or {}
  driver.lifecycle_handlers = driver.lifecycle_handlers or {}
  driver.sub_drivers = driver.sub_drivers or {}
  driver.datastore = require("datastore").init()
  driver.environment_info = host.environment_info()
  driver.device_cache = {}
  driver._thread = Thread.new(driver, "driver " .. name)
  driver._channel_handlers = {}
  return driver
end

function Driver:run()
  host.run(self)
end

function Driver:get_device_info(device_id)
  local device = self.device_cache[device_id]
  if device == nil then
    local info = host.device_info(device_id)
    if info == nil then return nil end
    device = Device.new(self, info)
    self.device_cache[device_id] = device
  end
  return device
end

function Driver:get_devices()
  local devices = {}
  for _, id in ipairs(host.device_ids()) do devices[#devices + 1] = self:get_device_info(id) end
  return devices
end

function Driver:try_create_device(metadata)
  return host.create_device(metadata)
end

-- Sends a capability command to one of the driver's devices, delivered like one from the hub
-- (after the current handler).
function Driver:inject_capability_command(device, command)
  if type(device) ~= "table" or type(command) ~= "table" or type(command.capability) ~= "string"
      or type(command.command) ~= "string" then
    host.raise("inject_capability_command(device, {capability = ..., command = ..., args = {...}})")
  end
  local problem = host.inject_command(device.id, command.capability, command.command, command.args)
  if problem then host.raise(problem) end
end

function Driver:call_with_delay(seconds, callback, name)
  return self._thread:call_with_delay(seconds, callback, name)
end

function Driver:call_on_schedule(seconds, callback, name)
  return self._thread:call_on_schedule(seconds, callback, name)
end

function Driver:cancel_timer(timer)
  self._thread:cancel_timer(timer)
end

-- callback(driver, receiver) each time `receiver` (a channel, a socket, a timer...) is ready.
function Driver:register_channel_handler(receiver, callback, name)
  if type(receiver) ~= "table" or type(receiver.setwaker) ~= "function" then
    host.raise("register_channel_handler(receiver, callback, name): receiver must be a channel, socket or "
               .. "timer (an object with setwaker)")
  end
  if type(callback) ~= "function" then host.raise("register_channel_handler: callback must be a function") end
  self:unregister_channel_handler(receiver)
  local what = "channel handler " .. tostring(name or receiver)
  self._channel_handlers[receiver] = cosock._spawn(function()
    while true do
      cosock.socket.select({receiver}, nil, nil)
      cosock._describe(what)
      local ok, kind, message, trace = host.try(callback, self, receiver)
      if not ok then host.task_failed(what, kind, message, trace) end
    end
  end, what, true)
end

function Driver:unregister_channel_handler(receiver)
  cosock._kill(self._channel_handlers[receiver])
  self._channel_handlers[receiver] = nil
end

-- Entry points for the hub ---------------------------------------------------

local function run_lifecycle(self, device, event, args)
  local handler = find_handler(self, self, device, "lifecycle_handlers", event)
  if handler then handler(self, device, event, args) end
end

function Driver:_on_device_lifecycle(device_id, event, args)
  local known = self.device_cache[device_id] ~= nil
  local device = self:get_device_info(device_id)
  if device == nil then return end
  args = args or {}
  device.thread:_queue(host.dispatch_name(), function()
    if event == "infoChanged" then
      args.old_st_store = device:_update(host.device_info(device_id))
    end
    run_lifecycle(self, device, event, args)
  end)
  if event == "added" and not known then -- a new device: its `init` follows `added`, as the hub's library does it
    device.thread:_queue("lifecycle init for " .. tostring(device.label), run_lifecycle, self, device, "init", {})
  elseif event == "removed" then
    device.thread:_queue("removed " .. tostring(device.label), function()
      self.device_cache[device_id] = nil
      self.datastore["__" .. device_id] = nil -- the hub leaves orphans; hubrt does not
    end)
    device.thread:close()
  end
end

function Driver:_on_capability_command(device_id, capability, component, name, args, positional_args)
  local command = {capability = capability, component = component, command = name,
                   args = args or {}, positional_args = positional_args or {}}
  local device = self:get_device_info(device_id)
  device.thread:_queue(host.dispatch_name(), function()
    local handler = find_handler(self, self, device, "capability_handlers", command.capability, command.command)
    if handler == nil then
      log.warn(string.format("no handler for %s.%s on %s", command.capability, command.command, device.label))
      return
    end
    handler(self, device, command)
  end)
end

-- The hub's address changed: environment_info follows, then lan_info_changed_handler(driver, hub_ipv4).
function Driver:_on_environment(info)
  for k, v in pairs(info) do self.environment_info[k] = v end
  if type(self.lan_info_changed_handler) == "function" then
    self._thread:_queue(host.dispatch_name(), self.lan_info_changed_handler, self, info.hub_ipv4)
  end
end

function Driver:_on_net(events)
  require("cosock.socket")._deliver(events)
end

function Driver:_on_timer(timer_id)
  host.fire_timer(timer_id)
end

function Driver:_on_driver_lifecycle(event)
  if type(self.driver_lifecycle) == "function" then
    self._thread:_queue(host.dispatch_name(), self.driver_lifecycle, self, event)
  end
end

function Driver:_on_discovery()
  if type(self.discovery) ~= "function" then return end
  local asked = false
  self._thread:_queue(host.dispatch_name(), self.discovery, self, {}, function()
    local first = not asked
    asked = true
    return first
  end)
end

-- The module is the Driver class, as on the hub (drivers call Driver.run(self) from their own run),
-- and calling it makes a driver.
Driver.init = new_driver
return setmetatable(Driver, {__call = function(_, name, template) return new_driver(name, template) end})
