-- The bridge driver's discovery cache and id map across restarts.
local test = require "hubrt.test"
local hub = test.hub

local function light(label)
  for _, e in ipairs(hub.events()) do
    if e.device == label then return e.device_id end
  end
  test.fail("no events from " .. label)
end

test("discovery creates one device per light and caches their addresses", function()
  hub.discover()
  local data = hub.datastore()
  test.equal(data.last_discovery, 1)
  test.equal(data.discovery_cache["bridge-light-B2"], {ip = "192.168.1.20", port = 8080, serial = "B2"})
  test.equal(hub.device(light("Porch")).device_network_id, "bridge-light-B2")
  hub.discover()
  test.equal(#hub.events(), 3, "a second discovery creates nothing new")
end)

test("after a graceful restart the cache is used, not rediscovery", function()
  hub.discover()
  hub.restart("graceful")
  hub.command(light("Hall"), "switch", "on")
  test.equal(hub.state(light("Hall"), "switch", "switch"), "on")
  test.equal(hub.datastore().last_discovery, 1)
end)

test("the id map survives a driver crash", function()
  hub.discover()
  local porch = light("Porch")
  hub.restart("driver_crash")
  test.equal(hub.datastore().id_map[porch], "bridge-light-B2")
end)

test("a power cut before the flush loses the cache; init rebuilds it", function()
  hub.discover()
  local garage = light("Garage")
  hub.restart("power_loss")
  test.truthy(hub.device(garage), "device records are the hub's and survive")
  -- the cache and the counter were lost; the first light's init rediscovered once
  test.equal(hub.datastore().last_discovery, 1)
  test.equal(hub.datastore().discovery_cache["bridge-light-C3"].serial, "C3")
  hub.command(garage, "switch", "on")
  test.equal(hub.state(garage, "switch", "switch"), "on")
  test.equal(hub.datastore().last_discovery, 1)
end)

test("removing a light drops it from the id map", function()
  hub.discover()
  local hall = light("Hall")
  hub.remove_device(hall)
  hub.restart("graceful")
  test.equal(hub.datastore().id_map[hall], nil)
  test.equal(hub.datastore()["__" .. hall], nil)
end)
