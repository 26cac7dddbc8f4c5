-- The thermostat's timers and per-device setpoints across restarts.
local test = require "hubrt.test"
local hub = test.hub

local function room(label, prefs)
  return hub.add_device{profile = "thermostat", label = label or "Room", preferences = prefs}
end

test("the control loop warms the room half a degree a minute", function()
  local r = room()
  hub.command(r, "thermostatHeatingSetpoint", "setHeatingSetpoint", {20})
  hub.advance(120)
  test.equal(hub.state(r, "temperatureMeasurement", "temperature"), 19)
  test.equal(hub.state(r, "thermostatOperatingState", "thermostatOperatingState"), "heating")
  hub.advance(120)
  test.equal(hub.state(r, "thermostatOperatingState", "thermostatOperatingState"), "idle")
end)

test("setpoints and room temperature survive a graceful restart", function()
  local r = room()
  hub.command(r, "thermostatHeatingSetpoint", "setHeatingSetpoint", {21})
  hub.command(r, "thermostatCoolingSetpoint", "setCoolingSetpoint", {26})
  hub.advance(60)
  hub.restart("graceful")
  test.equal(hub.field(r, "heat"), 21)
  test.equal(hub.field(r, "cool"), 26)
  test.equal(hub.field(r, "temperature"), 18.5)
  hub.advance(60)
  test.equal(hub.state(r, "temperatureMeasurement", "temperature"), 19, "the loop restarted after init")
end)

test("the pending setback is rescheduled after a driver crash", function()
  local r = room("Room", {setbackAfter = 600})
  hub.command(r, "thermostatHeatingSetpoint", "setHeatingSetpoint", {21})
  hub.advance(100)
  hub.restart("driver_crash")
  hub.advance(599)
  test.equal(hub.field(r, "heat"), 21)
  hub.advance(1)
  test.equal(hub.field(r, "heat"), 18)
  test.equal(hub.datastore().setbacks, 1)
end)

test("a power cut before the flush forgets the new setpoint", function()
  local r = room()
  hub.advance(10)
  hub.command(r, "thermostatHeatingSetpoint", "setHeatingSetpoint", {23})
  hub.restart("power_loss")
  test.equal(hub.field(r, "heat"), nil)
  test.equal(hub.state(r, "thermostatHeatingSetpoint", "heatingSetpoint"), 20, "back to the default")
end)

test("a changed preference reaches the driver as infoChanged", function()
  local r = room()
  hub.update_device(r, {preferences = {setbackAfter = 60}})
  test.assert_log("info", "setback delay is now 60 s")
end)

test("an unknown thermostat mode is refused", function()
  local r = room()
  test.expect_error("'turbo' is not one of", function()
    hub.command(r, "thermostatMode", "setThermostatMode", {"turbo"})
  end)
end)
