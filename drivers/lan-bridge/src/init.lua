-- Lights behind a LAN bridge. Discovery finds them on the (fake) network and
-- caches their address in driver.datastore.discovery_cache, keyed by network
-- id; driver.datastore.id_map maps device ids to network ids. Both survive
-- restarts, so a restarted driver talks to its lights without rediscovering,
-- and rediscovers only when the cached address stops answering.
local capabilities = require "st.capabilities"
local Driver = require "st.driver"
local log = require "log"
local network = require "fake_network"

local function dni_of(serial) return "bridge-light-" .. serial end

local function discover(driver)
  local cache = driver.datastore.discovery_cache
  for _, light in ipairs(network.scan()) do
    local dni = dni_of(light.serial)
    cache[dni] = {ip = light.ip, port = light.port, serial = light.serial}
    driver:try_create_device({
      type = "LAN", device_network_id = dni, label = light.name, profile = "bridge-light",
      manufacturer = "hubrt", model = "fake-bridge-light",
    })
  end
  driver.datastore.last_discovery = (driver.datastore.last_discovery or 0) + 1
end

local function address(driver, device)
  local dni = driver.datastore.id_map[device.id] or device.device_network_id
  return dni, driver.datastore.discovery_cache[dni]
end

-- Sends to the cached address; on a timeout rediscovers once and retries.
local function send(driver, device, on)
  local dni, entry = address(driver, device)
  if entry == nil then
    discover(driver)
    dni, entry = address(driver, device)
  end
  local reply, err = network.send(entry.ip, entry.port, entry.serial, on)
  if reply == nil then
    log.warn(device.label, "did not answer at", entry.ip, "(" .. err .. "); rediscovering")
    discover(driver)
    entry = driver.datastore.discovery_cache[dni]
    reply, err = network.send(entry.ip, entry.port, entry.serial, on)
  end
  if reply == nil then
    device:offline()
    return nil
  end
  device:online()
  return reply
end

local function emit(device, reply)
  device:emit_event(reply.on and capabilities.switch.switch.on() or capabilities.switch.switch.off())
end

local function command(on)
  return function(driver, device)
    local reply = send(driver, device, on)
    if reply then emit(device, reply) end
  end
end

local driver = Driver("lan-bridge", {
  discovery = function(driver, opts, should_continue)
    while should_continue() do discover(driver) end
  end,
  lifecycle_handlers = {
    added = function(driver, device)
      driver.datastore.id_map[device.id] = device.device_network_id
    end,
    init = function(driver, device)
      local reply = send(driver, device, nil)
      if reply then emit(device, reply) end
    end,
    removed = function(driver, device)
      driver.datastore.id_map[device.id] = nil
    end,
  },
  capability_handlers = {
    [capabilities.switch.ID] = {
      [capabilities.switch.commands.on.NAME] = command(true),
      [capabilities.switch.commands.off.NAME] = command(false),
    },
    [capabilities.refresh.ID] = {[capabilities.refresh.commands.refresh.NAME] = command(nil)},
    [capabilities.healthCheck.ID] = {[capabilities.healthCheck.commands.ping.NAME] = command(nil)},
  },
})

if driver.datastore.discovery_cache == nil then driver.datastore.discovery_cache = {} end
if driver.datastore.id_map == nil then driver.datastore.id_map = {} end

-- A test hook for the demo: `command <light> refresh` after this moves the bridge.
driver.move_bridge = network.move_bridge

driver:run()
