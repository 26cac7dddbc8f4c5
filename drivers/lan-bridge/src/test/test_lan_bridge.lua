-- The bridge driver against a bridge on the simulated LAN: discovery, control, the event
-- stream, and each kind of restart, with the bridge moving, going quiet and dropping its stream.
local test = require "hubrt.test"
local json = require "st.json"
local hub = test.hub

local IP = "192.168.1.20"
local SERIALS = {"A1", "B2", "C3"}
local NAMES = {A1 = "Hall", B2 = "Porch", C3 = "Garage"}
local on = {} -- the bridge's own state of each light

local function light_json(serial) return {body = json.encode({serial = serial, on = on[serial]})} end

-- A bridge at `ip`, as bridge_api.lua describes it (the same USN wherever it is).
local function bridge(ip)
  on = {A1 = false, B2 = false, C3 = false}
  local routes = {
    ["GET /lights"] = function()
      local list = {}
      for i, serial in ipairs(SERIALS) do list[i] = {serial = serial, name = NAMES[serial], on = on[serial]} end
      return {body = json.encode(list)}
    end,
    ["GET /events"] = {stream = true},
  }
  for _, serial in ipairs(SERIALS) do
    routes["GET /lights/" .. serial] = function() return light_json(serial) end
    routes["POST /lights/" .. serial .. "/on"] = function() on[serial] = true return light_json(serial) end
    routes["POST /lights/" .. serial .. "/off"] = function() on[serial] = false return light_json(serial) end
  end
  hub.lan_host{ip = ip, http = {port = 8080, routes = routes},
               ssdp = {ST = "urn:hubrt:device:light-bridge:1", LOCATION = "http://" .. ip .. ":8080/",
                       USN = "uuid:bridge-1"}}
end

local function searches()
  local n = 0
  for _, sent in ipairs(hub.lan_sent("239.255.255.250")) do
    if sent.data:match("^M%-SEARCH") then n = n + 1 end
  end
  return n
end

local function discovered()
  bridge(IP)
  hub.discover()
  hub.advance(2) -- the search listens for 2 s
end

local function state(label) return hub.state(label, "switch", "switch") end

test("discovery finds the bridge, creates its lights and caches its address", function()
  discovered()
  local data = hub.datastore()
  test.equal(data.bridges["uuid:bridge-1"], {ip = IP, port = 8080})
  test.equal(data.discovery_cache["bridge-light-B2"], {usn = "uuid:bridge-1", serial = "B2"})
  test.equal(hub.device("Porch").device_network_id, "bridge-light-B2")
  test.equal(data.last_discovery, 1)
  hub.discover()
  hub.advance(2)
  test.equal(#hub.logs("error"), 0)
  test.equal(hub.datastore().last_discovery, 2)
  local count = 0
  for _ in pairs(hub.datastore().discovery_cache) do count = count + 1 end
  test.equal(count, 3, "a second discovery creates nothing new")
end)

test("commands go over HTTP; the bridge's own changes arrive on its event stream", function()
  discovered()
  hub.command("Hall", "switch", "on")
  test.equal(state("Hall"), "on")
  local last = hub.lan_requests(IP)
  test.equal(last[#last].method .. " " .. last[#last].path, "POST /lights/A1/on")
  test.equal(hub.lan_push(IP, "/events", 'data: {"serial": "B2", "on": true}\n'), 1)
  test.equal(state("Porch"), "on")
end)

for _, kind in ipairs{"driver_crash", "graceful", "power_loss"} do
  test("after a " .. kind .. " restart the cached address is enough, and the stream is followed again", function()
    discovered()
    hub.flush()
    local before = searches()
    hub.restart(kind)
    hub.command("Garage", "switch", "on")
    test.equal(state("Garage"), "on")
    test.equal(searches(), before, "no rediscovery")
    hub.lan_push(IP, "/events", 'data: {"serial": "A1", "on": true}\n')
    test.equal(state("Hall"), "on")
  end)
end

test("the bridge moved while the hub was down: found again, its new address cached", function()
  discovered()
  hub.flush()
  hub.lan_move(IP, "192.168.1.77")
  hub.restart("power_loss")
  hub.advance(5) -- the old address does not answer (connect timeout)
  hub.advance(2) -- the search for the bridge
  test.equal(hub.datastore().bridges["uuid:bridge-1"], {ip = "192.168.1.77", port = 8080})
  test.equal(hub.device("Hall").online, true)
  hub.command("Porch", "switch", "on")
  test.equal(state("Porch"), "on")
end)

test("an unreachable bridge takes its lights offline until it answers again", function()
  discovered()
  hub.lan_fault(IP, "timeout")
  hub.command("Hall", "switch", "on")
  hub.advance(5)
  hub.advance(2)
  test.equal(hub.device("Hall").online, false)
  test.equal(state("Hall"), "off")
  hub.lan_fault(IP)
  hub.command("Hall", "switch", "on")
  test.equal(hub.device("Hall").online, true)
  test.equal(state("Hall"), "on")
end)

test("a dropped event stream is reconnected after a backoff", function()
  discovered()
  hub.lan_drop(IP)
  test.equal(hub.lan_push(IP, "/events", 'data: {"serial": "C3", "on": true}\n'), 0, "nobody listening yet")
  hub.advance(1) -- the first backoff
  test.equal(hub.lan_push(IP, "/events", 'data: {"serial": "C3", "on": true}\n'), 1)
  test.equal(state("Garage"), "on")
  local infos = {}
  for _, record in ipairs(hub.logs("info")) do infos[#infos + 1] = record.text end
  test.equal(table.concat(infos, "\n"):match("event stream of bridge uuid:bridge%-1 dropped") ~= nil, true)
end)
