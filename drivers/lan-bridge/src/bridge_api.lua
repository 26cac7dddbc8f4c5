-- Talking to a light bridge on the LAN. The bridge answers an SSDP search for
-- SEARCH_TARGET with its address (LOCATION) and its identity (USN), and speaks
-- HTTP with JSON bodies:
--   GET  /lights               -> [{"serial": "A1", "name": "Hall", "on": false}, ...]
--   GET  /lights/<serial>      -> {"serial": "A1", "on": false}
--   POST /lights/<serial>/on   -> {"serial": "A1", "on": true}   (and .../off)
--   GET  /events               -> a server-sent event stream: `data: {"serial": "A1", "on": true}` lines
local socket = require "cosock.socket"
local luncheon = require "luncheon"
local json = require "st.json"

local api = {SEARCH_TARGET = "urn:hubrt:device:light-bridge:1", TIMEOUT = 5}

-- The bridges that answer a search within `seconds`: {[usn] = {ip =, port =}}.
function api.search(seconds)
  local udp = socket.udp()
  udp:setsockname("*", 0)
  udp:settimeout(seconds)
  udp:sendto(table.concat({"M-SEARCH * HTTP/1.1", "HOST: 239.255.255.250:1900", 'MAN: "ssdp:discover"',
                           "MX: 2", "ST: " .. api.SEARCH_TARGET, "", ""}, "\r\n"), "239.255.255.250", 1900)
  local found = {}
  while true do
    local answer = udp:receivefrom()
    if not answer then break end
    local headers = luncheon.Headers.from_chunk((answer:gsub("^HTTP/1%.1 200 OK\r\n", "")))
    local location, usn = headers and headers:get_one("location"), headers and headers:get_one("usn")
    local ip, port = (location or ""):match("^http://([%d%.]+):(%d+)")
    if ip and usn then found[usn] = {ip = ip, port = tonumber(port)} end
  end
  udp:close()
  return found
end

local function connect(address)
  local sock = socket.tcp()
  sock:settimeout(api.TIMEOUT)
  local ok, err = sock:connect(address.ip, address.port)
  if not ok then return nil, err end
  return sock
end

-- One request: the decoded JSON answer, or nil and why.
function api.request(address, method, path)
  local sock, err = connect(address)
  if not sock then return nil, err end
  local sent, serr = luncheon.Request.new(method, path, sock):add_header("Host", address.ip):send()
  if not sent then sock:close() return nil, serr end
  local response, rerr = luncheon.Response.tcp_source(sock)
  local body, berr = nil, rerr
  if response then body, berr = response:get_body() end
  sock:close()
  if not body then return nil, berr end
  if response.status ~= 200 then return nil, "HTTP " .. response.status end
  local ok, value = pcall(json.decode, body)
  if not ok then return nil, "not JSON: " .. tostring(value) end
  return value
end

-- The bridge's event stream, its head read: the socket to read `data:` lines from, or nil and why.
function api.open_events(address)
  local sock, err = connect(address)
  if not sock then return nil, err end
  local sent, serr = luncheon.Request.new("GET", "/events", sock):add_header("Host", address.ip)
                                                                   :add_header("Accept", "text/event-stream"):send()
  if not sent then sock:close() return nil, serr end
  local response, rerr = luncheon.Response.tcp_source(sock)
  if not response or response.status ~= 200 then
    sock:close()
    return nil, rerr or ("HTTP " .. response.status)
  end
  sock:settimeout(nil) -- events come when they come
  return sock
end

function api.decode_event(line)
  local payload = line:match("^data:%s*(.+)$")
  if not payload then return nil end
  local ok, event = pcall(json.decode, payload)
  if ok and type(event) == "table" and type(event.serial) == "string" then return event end
  return nil
end

return api
