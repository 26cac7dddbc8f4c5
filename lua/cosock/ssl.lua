-- `cosock.ssl`: TLS over a cosock socket. On hubrt's simulated LAN peers speak in clear
-- (there are no certificates to check), so a wrapped socket is the socket itself and the
-- handshake always succeeds; the same driver code runs unchanged.
local _, host = ...

local ssl = {}

function ssl.wrap(sock, params)
  if type(sock) ~= "table" or type(sock.send) ~= "function" then
    return nil, "ssl.wrap: a connected tcp socket is needed"
  end
  if params ~= nil and type(params) ~= "table" then host.raise("ssl.wrap(sock, params): params must be a table") end
  sock.dohandshake = sock.dohandshake or function() return 1 end
  sock.sni = sock.sni or function() return 1 end
  return sock
end

return ssl
