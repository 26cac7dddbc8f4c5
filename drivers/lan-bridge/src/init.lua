-- Lights behind a LAN bridge, over the network: discovery by SSDP, control by HTTP, state
-- changes from the bridge's event stream (reconnected with backoff when it drops).
--
-- driver.datastore keeps what a restart needs to reach the lights without rediscovering:
--   bridges[usn]        the bridge's last known address {ip, port}
--   discovery_cache[dni] {usn, serial} of each light
--   id_map[device id]   its network id
-- A bridge that stops answering at its cached address is looked for again (SSDP) and
-- its new address cached: a DHCP lease renewal does not lose the lights.
local capabilities = require "st.capabilities"
local Driver = require "st.driver"
local cosock = require "cosock"
local socket = require "cosock.socket"
local log = require "log"
local api = require "bridge_api"

local SEARCH_SECONDS = 2
local MAX_BACKOFF = 60

local function dni_of(serial) return "bridge-light-" .. serial end

local function emit(device, on)
  device:emit_event(on and capabilities.switch.switch.on() or capabilities.switch.switch.off())
end

local function device_for(driver, dni)
  for _, device in ipairs(driver:get_devices()) do
    if device.device_network_id == dni then return device end
  end
end

local function discover(driver)
  for usn, address in pairs(api.search(SEARCH_SECONDS)) do
    driver.datastore.bridges[usn] = address
    local lights, err = api.request(address, "GET", "/lights")
    if not lights then
      log.warn("bridge", usn, "at", address.ip, "did not list its lights:", err)
    else
      for _, light in ipairs(lights) do
        local dni = dni_of(light.serial)
        driver.datastore.discovery_cache[dni] = {usn = usn, serial = light.serial}
        if not device_for(driver, dni) then
          driver:try_create_device({type = "LAN", device_network_id = dni, label = light.name,
                                    profile = "bridge-light", manufacturer = "hubrt", model = "light-bridge"})
        end
      end
    end
  end
  driver.datastore.last_discovery = (driver.datastore.last_discovery or 0) + 1
end

-- Looks for a bridge that no longer answers where it was; true if it was found (perhaps elsewhere).
local function relocate(driver, usn)
  local found = api.search(SEARCH_SECONDS)[usn]
  if found then
    local old = driver.datastore.bridges[usn]
    if old == nil or old.ip ~= found.ip or old.port ~= found.port then
      log.info("bridge", usn, "is now at", found.ip .. ":" .. found.port)
    end
    driver.datastore.bridges[usn] = found
  end
  return found ~= nil
end

-- A request about a device's light, through its bridge's cached address; if that fails, the
-- bridge is looked for again once. nil (and the device offline) when it cannot be reached.
local function ask(driver, device, method, path_of)
  local dni = driver.datastore.id_map[device.id] or device.device_network_id
  local entry = driver.datastore.discovery_cache[dni]
  if entry == nil then
    discover(driver) -- an unknown light (the cache was lost): rebuild it
    entry = driver.datastore.discovery_cache[dni]
    if entry == nil then device:offline() return nil end
  end
  local address = driver.datastore.bridges[entry.usn]
  local reply, err = api.request(address, method, path_of(entry.serial))
  if reply == nil then
    log.warn(device.label, "got no answer from its bridge at", address.ip, "(" .. err .. "); looking for it")
    if relocate(driver, entry.usn) then
      reply = api.request(driver.datastore.bridges[entry.usn], method, path_of(entry.serial))
    end
  end
  if reply == nil then
    device:offline()
    return nil
  end
  device:online()
  return reply
end

-- One task per bridge follows its event stream, reconnecting with backoff (1 s doubling to 60 s).
local following = {}
local function follow(driver, usn)
  if following[usn] then return end
  following[usn] = true
  cosock.spawn(function()
    local backoff = 1
    while true do
      local sock, err = api.open_events(driver.datastore.bridges[usn])
      if sock then
        backoff = 1
        while true do
          local line = sock:receive("*l")
          if line == nil then break end
          local event = api.decode_event(line)
          local device = event and device_for(driver, dni_of(event.serial))
          if device then emit(device, event.on) end
        end
        sock:close()
        log.info("the event stream of bridge", usn, "dropped; reconnecting")
      else
        log.warn("no event stream from bridge", usn, "(" .. err .. "); again in", backoff, "s")
        relocate(driver, usn)
      end
      socket.sleep(backoff)
      backoff = math.min(backoff * 2, MAX_BACKOFF)
    end
  end, "events of " .. usn)
end

local function switch_to(on)
  return function(driver, device)
    local reply = ask(driver, device, "POST", function(serial)
      return "/lights/" .. serial .. (on and "/on" or "/off")
    end)
    if reply then emit(device, reply.on) end
  end
end

local function refresh(driver, device)
  local reply = ask(driver, device, "GET", function(serial) return "/lights/" .. serial end)
  if reply then emit(device, reply.on) end
end

local driver = Driver("lan-bridge", {
  discovery = function(driver, _, should_continue)
    while should_continue() do discover(driver) end
  end,
  lifecycle_handlers = {
    added = function(driver, device)
      driver.datastore.id_map[device.id] = device.device_network_id
    end,
    init = function(driver, device)
      refresh(driver, device)
      local entry = driver.datastore.discovery_cache[device.device_network_id]
      if entry then follow(driver, entry.usn) end
    end,
    removed = function(driver, device)
      driver.datastore.id_map[device.id] = nil
    end,
  },
  capability_handlers = {
    [capabilities.switch.ID] = {
      [capabilities.switch.commands.on.NAME] = switch_to(true),
      [capabilities.switch.commands.off.NAME] = switch_to(false),
    },
    [capabilities.refresh.ID] = {[capabilities.refresh.commands.refresh.NAME] = refresh},
    [capabilities.healthCheck.ID] = {[capabilities.healthCheck.commands.ping.NAME] = refresh},
  },
})

for _, name in ipairs{"bridges", "discovery_cache", "id_map"} do
  if driver.datastore[name] == nil then driver.datastore[name] = {} end
end

driver:run()
