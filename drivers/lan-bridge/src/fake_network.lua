-- The "network" this driver talks to: a bridge with three lights, as a Lua
-- module shipped with the package (a driver cannot open sockets under hubrt).
-- Its state is transient on purpose: like a real bridge, it does not live in
-- the driver's datastore. `move_bridge` changes the bridge's address, as a
-- DHCP lease renewal would.
local network = {
  bridge = {ip = "192.168.1.20", port = 8080},
  lights = {
    {serial = "A1", name = "Hall"},
    {serial = "B2", name = "Porch"},
    {serial = "C3", name = "Garage"},
  },
  power = {},
}

function network.scan()
  local found = {}
  for _, light in ipairs(network.lights) do
    found[#found + 1] = {serial = light.serial, name = light.name, ip = network.bridge.ip, port = network.bridge.port}
  end
  return found
end

-- Sends a command to a light at ip:port; fails like a timeout when the address is stale.
function network.send(ip, port, serial, on)
  if ip ~= network.bridge.ip or port ~= network.bridge.port then return nil, "timeout" end
  if on ~= nil then network.power[serial] = on end
  return {on = network.power[serial] == true}
end

function network.move_bridge(ip)
  network.bridge.ip = ip
end

return network
