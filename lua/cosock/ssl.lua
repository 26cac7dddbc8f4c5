-- `cosock.ssl`: TLS over a cosock TCP socket, as LuaSec's `ssl.wrap(sock, params)`,
-- `sock:sni(name)` and `sock:dohandshake()`. On the real network (--network real) the
-- worker's socket is wrapped by Python's ssl module at the handshake: `verify = "peer"`
-- checks the server's certificate against the machine's trusted ones, `verify = "none"`
-- (what LAN drivers use for devices' self-signed certificates) does not. On the simulated
-- LAN peers speak in clear (there are no certificates to check): the handshake succeeds
-- and the same driver code runs unchanged.
local _, host = ...

local ssl = {}

local function dohandshake(sock)
  if sock._tls_done then return 1 end
  local answer = host.tls(sock.id, sock._tls_verify, sock._tls_name, sock.timeout)
  if answer.permission then host.raise(answer.error) end
  if answer.error then return nil, answer.error end
  sock._tls_done = true
  return 1
end

local function sni(sock, name)
  if type(name) ~= "string" then host.raise("sni(name): a host name (a string)") end
  sock._tls_name = name
  return 1
end

function ssl.wrap(sock, params)
  if type(sock) ~= "table" or type(sock.send) ~= "function" or sock.kind ~= "tcp" then
    return nil, "ssl.wrap: a connected tcp socket is needed"
  end
  if params ~= nil and type(params) ~= "table" then host.raise("ssl.wrap(sock, params): params must be a table") end
  params = params or {}
  if params.mode ~= nil and params.mode ~= "client" then
    return nil, "ssl.wrap: only mode = \"client\" is available (a driver makes TLS connections, it serves none)"
  end
  local verify = params.verify
  if type(verify) == "table" then verify = verify[1] end
  if verify ~= nil and verify ~= "none" and verify ~= "peer" then
    return nil, "ssl.wrap: verify is \"none\" or \"peer\", got " .. tostring(verify)
  end
  sock._tls_verify = verify == "peer"
  sock.dohandshake, sock.sni = dohandshake, sni
  return sock
end

return ssl
