-- A virtual switch/dimmer. Its state is persisted with set_field(..., {persist = true}),
-- so after any restart `init` re-emits what the device was doing before.
local capabilities = require "st.capabilities"
local Driver = require "st.driver"
local log = require "log"

local function emit_state(device)
  local on = device:get_field("on")
  device:emit_event(on and capabilities.switch.switch.on() or capabilities.switch.switch.off())
  if device:supports_capability(capabilities.switchLevel) then
    device:emit_event(capabilities.switchLevel.level(device:get_field("level") or 100))
  end
end

local function switch_on(driver, device)
  device:set_field("on", true, {persist = true})
  if device:supports_capability(capabilities.switchLevel) and (device:get_field("level") or 0) == 0 then
    device:set_field("level", device.preferences.defaultLevel or 100, {persist = true})
  end
  driver.datastore.switched = (driver.datastore.switched or 0) + 1
  emit_state(device)
end

local function switch_off(driver, device)
  device:set_field("on", false, {persist = true})
  driver.datastore.switched = (driver.datastore.switched or 0) + 1
  emit_state(device)
end

local function set_level(driver, device, command)
  local level = command.args.level
  device:set_field("level", level, {persist = true})
  device:set_field("on", level > 0, {persist = true})
  emit_state(device)
end

local function device_init(driver, device)
  if device:get_field("on") == nil then
    device:set_field("on", false, {persist = true})
  end
  log.info("restoring", device.label, device:get_field("on") and "on" or "off")
  emit_state(device)
end

local driver = Driver("virtual-dimmer", {
  supported_capabilities = {capabilities.switch, capabilities.switchLevel, capabilities.refresh},
  lifecycle_handlers = {init = device_init},
  capability_handlers = {
    [capabilities.switch.ID] = {
      [capabilities.switch.commands.on.NAME] = switch_on,
      [capabilities.switch.commands.off.NAME] = switch_off,
    },
    [capabilities.switchLevel.ID] = {
      [capabilities.switchLevel.commands.setLevel.NAME] = set_level,
    },
    [capabilities.refresh.ID] = {
      [capabilities.refresh.commands.refresh.NAME] = function(_, device) emit_state(device) end,
    },
  },
})

driver:run()
