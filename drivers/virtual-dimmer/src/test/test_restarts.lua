-- The dimmer's state across every kind of stop. Run with `pytest drivers/` or `hubrt test`.
local test = require "hubrt.test"
local hub = test.hub

local function new_lamp()
  local lamp = hub.add_device{profile = "dimmer", label = "Lamp"}
  hub.command(lamp, "switch", "on")
  hub.command(lamp, "switchLevel", "setLevel", {40})
  return lamp
end

test("a new lamp is off at full level", function()
  local lamp = hub.add_device{profile = "dimmer", label = "Lamp"}
  test.equal(hub.state(lamp, "switch", "switch"), "off")
  test.equal(hub.state(lamp, "switchLevel", "level"), 100)
end)

test("everything saved survives a driver crash", function()
  local lamp = new_lamp()
  hub.restart("driver_crash")
  test.equal(hub.state(lamp, "switch", "switch"), "on")
  test.equal(hub.state(lamp, "switchLevel", "level"), 40)
  test.assert_event{device = "Lamp", capability = "switchLevel", attribute = "level", value = 40}
end)

test("a power cut loses what was not flushed", function()
  local lamp = new_lamp()
  hub.advance(10) -- the hub flushes every 5 s
  hub.command(lamp, "switchLevel", "setLevel", {75})
  test.equal(hub.field(lamp, "level"), 75)
  hub.restart("power_loss")
  test.equal(hub.field(lamp, "level"), 40)
  test.equal(hub.state(lamp, "switchLevel", "level"), 40)
end)

test("a graceful restart loses nothing", function()
  local lamp = new_lamp()
  hub.command(lamp, "switch", "off")
  hub.restart("graceful")
  test.equal(hub.datastore()["__" .. lamp], {
    on = false, level = 40,
    __state_cache = {main = {switch = {switch = {value = "off"}}, switchLevel = {level = {value = 40}}}},
  })
  test.equal(hub.datastore().switched, 2)
end)

test("switching on from level 0 uses the default level preference", function()
  local lamp = hub.add_device{profile = "dimmer", label = "Lamp", preferences = {defaultLevel = 30}}
  hub.command(lamp, "switchLevel", "setLevel", {0})
  hub.command(lamp, "switch", "on")
  test.equal(hub.state(lamp, "switchLevel", "level"), 30)
end)

test("levels above 100 are refused before they reach the driver", function()
  local lamp = hub.add_device{profile = "dimmer", label = "Lamp"}
  test.expect_error("above the maximum 100", function()
    hub.command(lamp, "switchLevel", "setLevel", {101})
  end)
end)
