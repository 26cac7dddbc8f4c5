-- A simulated thermostat. Per device, persisted with set_field(..., {persist = true}):
-- mode, heating and cooling setpoints, the simulated room temperature, and
-- the time its setback is due. Timers: a control loop every 60 s moves the
-- room temperature toward the active setpoint; a one-shot timer applies a
-- setback some time after the last change. After a restart `init` restarts
-- both timers from the persisted values, so the schedule carries on: the
-- setback is persisted as the os.time() it is due at, so its countdown goes
-- on across a restart rather than starting again.
local capabilities = require "st.capabilities"
local Driver = require "st.driver"
local log = require "log"
local utils = require "st.utils"

local LOOP_SECONDS = 60
local STEP = 0.5
local DEFAULTS = {mode = "heat", heat = 20, cool = 25, temperature = 18}

local function field(device, name)
  local value = device:get_field(name)
  if value == nil then return DEFAULTS[name] end
  return value
end

local function operating_state(device)
  local mode, t = field(device, "mode"), field(device, "temperature")
  if (mode == "heat" or mode == "auto") and t < field(device, "heat") then return "heating" end
  if (mode == "cool" or mode == "auto") and t > field(device, "cool") then return "cooling" end
  return "idle"
end

local function emit_all(device)
  device:emit_event(capabilities.temperatureMeasurement.temperature({value = field(device, "temperature"), unit = "C"}))
  device:emit_event(capabilities.thermostatMode.thermostatMode(field(device, "mode")))
  device:emit_event(capabilities.thermostatHeatingSetpoint.heatingSetpoint({value = field(device, "heat"), unit = "C"}))
  device:emit_event(capabilities.thermostatCoolingSetpoint.coolingSetpoint({value = field(device, "cool"), unit = "C"}))
  device:emit_event(capabilities.thermostatOperatingState.thermostatOperatingState(operating_state(device)))
end

local function control(driver, device)
  local state, t = operating_state(device), field(device, "temperature")
  if state == "heating" then t = t + STEP elseif state == "cooling" then t = t - STEP end
  if t ~= field(device, "temperature") then
    device:set_field("temperature", t, {persist = true})
    device:emit_event(capabilities.temperatureMeasurement.temperature({value = t, unit = "C"}))
  end
  device:emit_event(capabilities.thermostatOperatingState.thermostatOperatingState(operating_state(device)))
end

local setback -- forward declaration

local function schedule_setback(driver, device, due)
  local old = device:get_field("setback_timer")
  if old then driver:cancel_timer(old) end
  device:set_field("setback_timer", device.thread:call_with_delay(math.max(due - os.time(), 0),
    function() setback(driver, device) end, "setback " .. device.label))
  device:set_field("setback_due", due, {persist = true})
end

setback = function(driver, device)
  local lowered = utils.clamp_value(field(device, "heat") - (device.preferences.setbackDegrees or 3), 5, 35)
  log.info(device.label, "setback: heating setpoint", field(device, "heat"), "->", lowered)
  device:set_field("heat", lowered, {persist = true})
  device:set_field("setback_due", nil, {persist = true})
  driver.datastore.setbacks = (driver.datastore.setbacks or 0) + 1
  emit_all(device)
end

local function changed(driver, device)
  schedule_setback(driver, device, os.time() + (device.preferences.setbackAfter or 3600))
  emit_all(device)
end

local function start_device(driver, device)
  device.thread:call_on_schedule(LOOP_SECONDS, function() control(driver, device) end, "loop " .. device.label)
  local due = device:get_field("setback_due")
  if due then schedule_setback(driver, device, due) end
  emit_all(device)
end

local driver = Driver("thermostat", {
  lifecycle_handlers = {
    init = start_device,
    infoChanged = function(driver, device, event, args)
      if args.old_st_store.preferences.setbackAfter ~= device.preferences.setbackAfter then
        log.info(device.label, "setback delay is now", device.preferences.setbackAfter, "s")
      end
    end,
  },
  capability_handlers = {
    [capabilities.thermostatMode.ID] = {
      [capabilities.thermostatMode.commands.setThermostatMode.NAME] = function(driver, device, command)
        device:set_field("mode", command.args.mode, {persist = true})
        changed(driver, device)
      end,
    },
    [capabilities.thermostatHeatingSetpoint.ID] = {
      [capabilities.thermostatHeatingSetpoint.commands.setHeatingSetpoint.NAME] = function(driver, device, command)
        device:set_field("heat", command.args.setpoint, {persist = true})
        changed(driver, device)
      end,
    },
    [capabilities.thermostatCoolingSetpoint.ID] = {
      [capabilities.thermostatCoolingSetpoint.commands.setCoolingSetpoint.NAME] = function(driver, device, command)
        device:set_field("cool", command.args.setpoint, {persist = true})
        changed(driver, device)
      end,
    },
    [capabilities.refresh.ID] = {
      [capabilities.refresh.commands.refresh.NAME] = function(_, device) emit_all(device) end,
    },
  },
})

driver:run()
