-- `require "st.mdns"`: mDNS service discovery, answered by the hub's network (on the
-- simulated LAN: the services its hosts advertise).
local _, host = ...

local mdns = {}

-- {found = {{service_info = {name, service_type, domain}, host_info = {address, port, name},
--   txt = {text = {byte array of "key=value", ...}}}, ...}, answers = {the SRV, A and TXT records}},
-- as the hub answers; or nil and the reason.
function mdns.discover(service_type, domain)
  if type(service_type) ~= "string" or (domain ~= nil and type(domain) ~= "string") then
    host.raise("mdns.discover(service_type, domain): a service type such as _hue._tcp, and a domain such as local")
  end
  local answer = host.net("mdns", 0, service_type, nil, domain or "local")
  if answer.permission then host.raise(answer.error) end
  if answer.error then return nil, answer.error end
  answer.found, answer.answers = answer.found or {}, answer.answers or {}
  return answer
end

return mdns
