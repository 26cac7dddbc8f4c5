-- `lustre.handshake`: the client's HTTP Upgrade request and the check of the server's answer
-- (RFC 6455 section 4). Over luncheon, so what the socket reads after the head stays in the
-- socket for the frames that follow.
local Request = require "luncheon.request"
local Response = require "luncheon.response"
local Key = require "lustre.handshake.key"

local Handshake = {}
Handshake.__index = Handshake

-- `extra_headers`: {name = value} sent with the request (an Authorization, an Origin...).
function Handshake.client(key, protocols, extensions, extra_headers)
  return setmetatable({key = key or Key.generate_key(), protocols = protocols or {},
                       extensions = extensions or {}, extra_headers = extra_headers or {}}, Handshake)
end

-- The request, as sent to `host` ("name:port") for `url` (a path) on `socket`.
function Handshake:request(url, host, socket)
  local request = Request.new("GET", url or "/", socket)
    :add_header("Host", host)
    :add_header("Upgrade", "websocket")
    :add_header("Connection", "Upgrade")
    :add_header("Sec-WebSocket-Key", self.key)
    :add_header("Sec-WebSocket-Version", "13")
  if #self.protocols > 0 then request:add_header("Sec-WebSocket-Protocol", table.concat(self.protocols, ", ")) end
  for _, extension in ipairs(self.extensions) do
    local text = extension.name
    for name, value in pairs(extension.params or {}) do
      text = text .. "; " .. name .. (value == true and "" or "=" .. tostring(value))
    end
    request:add_header("Sec-WebSocket-Extensions", text)
  end
  for name, value in pairs(self.extra_headers) do request:add_header(name, tostring(value)) end
  return request
end

-- true when `res` (a luncheon response) accepts this handshake; else nil and why.
function Handshake:validate_accept(res)
  if res == nil then return nil, "no response" end
  if res.status ~= 101 then
    return nil, "the server answered " .. tostring(res.status) .. " " .. tostring(res.status_msg or "")
      .. " instead of 101 Switching Protocols"
  end
  local headers = res:get_headers()
  local upgrade, connection = headers:get_one("upgrade"), headers:get_one("connection")
  if upgrade == nil or upgrade:lower() ~= "websocket" then return nil, "missing 'Upgrade: websocket'" end
  if connection == nil or not connection:lower():find("upgrade", 1, true) then
    return nil, "missing 'Connection: Upgrade'"
  end
  local accept = headers:get_one("sec-websocket-accept")
  if accept ~= Key.build_accept_from(self.key) then
    return nil, "Sec-WebSocket-Accept does not match the key sent: " .. tostring(accept)
  end
  self.protocol = headers:get_one("sec-websocket-protocol")
  return true
end

-- Sends the request on a connected socket and checks the answer: true, or nil and why.
function Handshake:send(socket, url, host)
  local sent, err = self:request(url, host, socket):send()
  if not sent then return nil, err end
  local response, rerr = Response.tcp_source(socket)
  if response == nil then return nil, rerr end
  return self:validate_accept(response)
end

return Handshake
