-- `cosock.socket` (and `require "socket"`): luasocket's API for cosock tasks,
-- on the hub's network. A call that must wait (connect, receive) waits in the
-- task, so other tasks and other devices go on; timeouts run on the hub's clock.
-- The hub answers connect/send/close at once; what comes back (bytes, a
-- datagram, the peer closing) arrives as a `net` dispatch (socket._deliver).
local _, host = ...

local cosock -- loaded on first use (the two modules need each other)

local socket = {_VERSION = "LuaSocket 3.0 (hubrt)"}

local function yield(...)
  cosock = cosock or require "cosock"
  return cosock._yield(...)
end

local sockets = {} -- id -> socket (until closed)
local next_id = 0

-- One network call to the hub: its answer table ({error = text} when it failed).
local deliver -- socket._deliver, below

local function net(call, sock, address, port, data)
  local answer = host.net(call, sock.id, address, port, data)
  if answer.permission then host.raise(answer.error) end
  if answer.events then deliver(answer.events) end -- what the peer answered at once
  return answer
end

local function check_timeout(seconds)
  if seconds ~= nil and type(seconds) ~= "number" then
    host.raise("settimeout: a number of seconds, or nil to wait for ever")
  end
  if seconds ~= nil and seconds < 0 then return nil end -- luasocket: negative means no limit
  return seconds
end

local function check_address(address, port, what)
  if type(address) ~= "string" or address == "" then
    host.raise(what .. ": the address must be a host name or an IP address (a string), got " .. type(address))
  end
  port = tonumber(port)
  if port == nil or port ~= math.floor(port) or port < 0 or port > 65535 then
    host.raise(what .. ": the port must be a whole number from 0 to 65535")
  end
  return port
end

local function wake(sock, kind)
  local waker = sock.wakers[kind]
  if waker then waker() end
end

-- TCP -------------------------------------------------------------------------

local Tcp = {}
Tcp.__index = Tcp
Tcp.__tostring = function(self) return "tcp{" .. self.state .. "}: " .. self.id end

-- `id`: given by the network for a connection a listening socket accepted.
local function new_socket(kind, mt, id)
  if id == nil then
    next_id = next_id + 1
    id = next_id
  end
  local sock = setmetatable({id = id, kind = kind, state = "new", buf = "", queue = {}, wakers = {},
                             timeout = nil}, mt)
  sockets[id] = sock
  return sock
end

function socket.tcp()
  return new_socket("tcp", Tcp)
end
socket.tcp4 = socket.tcp

function Tcp:settimeout(seconds)
  self.timeout = check_timeout(seconds)
  return 1
end

function Tcp:setoption() return 1 end
function Tcp:getfd() return self.id end
function Tcp:dirty() return #self.buf > 0 end

function Tcp:connect(address, port)
  port = check_address(address, port, "connect")
  if self.state ~= "new" then return nil, self.state == "closed" and "closed" or "already connected" end
  local answer = net("connect", self, address, port)
  if answer.error then return nil, answer.error end
  if answer.pending then -- connecting: a `connected` (or error) event, or the timeout, ends the wait
    self.state = "connecting"
    local _, _, err = yield(nil, {self}, self.timeout)
    if self.state == "connected" then return 1 end
    self.state = "new"
    return nil, self.error or err or "timeout"
  end
  self.state, self.peer, self.me = "connected", answer.peer, answer["local"]
  return 1
end

function Tcp:send(data, i, j)
  if type(data) ~= "string" then host.raise("send: data must be a string, got " .. type(data)) end
  if self.state ~= "connected" or self.error or self.peer_closed then return nil, self.error or "closed", 0 end
  local chunk = string.sub(data, i or 1, j or -1)
  local answer = net("send", self, nil, nil, chunk)
  if answer.error then return nil, answer.error, 0 end
  return (i or 1) - 1 + #chunk
end

-- What the buffer holds for `pattern` (a line, n bytes), or nil if not yet there.
local function take(sock, pattern)
  local buf = sock.buf
  if pattern == "*l" or pattern == "l" then
    local nl = string.find(buf, "\n", 1, true)
    if nl == nil then return nil end
    sock.buf = string.sub(buf, nl + 1)
    return (string.gsub(string.sub(buf, 1, nl - 1), "\r", ""))
  elseif type(pattern) == "number" then
    if #buf < pattern then return nil end
    sock.buf = string.sub(buf, pattern + 1)
    return string.sub(buf, 1, pattern)
  end
  return nil -- "*a": all of it, once the peer closes
end

function Tcp:receive(pattern, prefix)
  pattern = pattern or "*l"
  if not (pattern == "*l" or pattern == "l" or pattern == "*a" or pattern == "a"
          or (type(pattern) == "number" and pattern >= 0)) then
    host.raise("receive: the pattern is '*l', '*a' or a number of bytes, got " .. tostring(pattern))
  end
  if self.state ~= "connected" then return nil, "closed", "" end
  prefix = prefix or ""
  while true do
    local got = take(self, pattern)
    if got ~= nil then return prefix .. got end
    if self.peer_closed or self.error then
      local rest = self.buf
      self.buf = ""
      if (pattern == "*a" or pattern == "a") and not self.error then return prefix .. rest end
      return nil, self.error or "closed", prefix .. rest
    end
    self.need_more = true -- what is buffered is not enough: ready again when more comes
    local _, _, err = yield({self}, nil, self.timeout)
    if err then
      local rest = self.buf
      self.buf = ""
      return nil, err, prefix .. rest
    end
  end
end

-- Closes a socket (telling the network if it knows of it); a task waiting on it wakes.
local function close(sock, known)
  if sock.state ~= "closed" then
    if known then net("close", sock) end
    sock.state = "closed"
    sockets[sock.id] = nil
    wake(sock, "recvr")
  end
  return 1
end

function Tcp:close()
  return close(self, self.state == "connected" or self.state == "connecting" or self.state == "listening")
end

function Tcp:shutdown() return 1 end

function Tcp:getpeername()
  if not self.peer then return nil, "not connected" end
  return self.peer[1], self.peer[2]
end

function Tcp:getsockname()
  if not self.me then return "0.0.0.0", 0 end
  return self.me[1], self.me[2]
end

-- A server: bind (where), listen (from now on), accept (a connected socket per client).
function Tcp:bind(address, port)
  port = check_address(address, port, "bind")
  if self.state ~= "new" then return nil, "bind: the socket is already " .. self.state end
  self.bind_to = {address, port}
  return 1
end

function Tcp:listen()
  if self.state ~= "new" then return nil, "listen: the socket is already " .. self.state end
  local bind = self.bind_to or {"*", 0}
  local answer = net("listen", self, bind[1], bind[2])
  if answer.error then return nil, answer.error end
  self.state, self.me, self.clients = "listening", answer["local"], {}
  return 1
end

function Tcp:accept()
  if self.state ~= "listening" then return nil, "accept: the socket is not listening" end
  while true do
    local client = table.remove(self.clients, 1)
    if client then return client end
    local _, _, err = yield({self}, nil, self.timeout)
    if err then return nil, err end
    if self.state == "closed" then return nil, "closed" end
  end
end

function Tcp:setwaker(kind, waker)
  self.wakers[kind] = waker
  if not waker then return end
  if kind == "recvr" and ((#self.buf > 0 and not self.need_more) or self.peer_closed or self.error
                          or self.state == "closed" or (self.clients and #self.clients > 0)) then
    waker()
  elseif kind == "sendr" and self.state ~= "connecting" then
    waker()
  end
end

-- UDP ---------------------------------------------------------------------------

local Udp = {}
Udp.__index = Udp
Udp.__tostring = function(self) return "udp{" .. self.state .. "}: " .. self.id end

function socket.udp()
  return new_socket("udp", Udp)
end
socket.udp4 = socket.udp

Udp.settimeout = Tcp.settimeout
Udp.setoption = Tcp.setoption
Udp.getfd = Tcp.getfd

function Udp:setsockname(address, port)
  port = check_address(address, port, "setsockname")
  local answer = net("bind", self, address, port)
  if answer.error then return nil, answer.error end
  self.me, self.state = answer["local"], "bound"
  return 1
end

function Udp:setpeername(address, port)
  port = check_address(address, port, "setpeername")
  -- the system picks the address of the interface toward the peer (getsockname tells it)
  local answer = net("setpeer", self, address, port)
  if answer.error then return nil, answer.error end
  self.me, self.state, self.peer = answer["local"], "bound", {address, port}
  return 1
end

function Udp:sendto(data, address, port)
  if type(data) ~= "string" then host.raise("sendto: data must be a string, got " .. type(data)) end
  port = check_address(address, port, "sendto")
  if self.state == "closed" then return nil, "closed" end
  local answer = net("sendto", self, address, port, data)
  if answer.error then return nil, answer.error end
  return #data
end

function Udp:send(data)
  if not self.peer then return nil, "not connected" end
  return self:sendto(data, self.peer[1], self.peer[2])
end

function Udp:receivefrom(size)
  while true do
    local datagram = table.remove(self.queue, 1)
    if datagram then
      local data = size and string.sub(datagram.data, 1, size) or datagram.data
      return data, datagram.from[1], datagram.from[2]
    end
    if self.state == "closed" then return nil, "closed" end
    local _, _, err = yield({self}, nil, self.timeout)
    if err then return nil, err end
  end
end

function Udp:receive(size)
  return (self:receivefrom(size))
end

function Udp:close()
  return close(self, true)
end

Udp.getsockname = Tcp.getsockname
Udp.getpeername = Tcp.getpeername

function Udp:setwaker(kind, waker)
  self.wakers[kind] = waker
  if waker and (kind == "sendr" or #self.queue > 0 or self.state == "closed") then waker() end
end

-- DNS, the clock, waiting -----------------------------------------------------------

socket.dns = {}
function socket.dns.toip(name)
  if type(name) ~= "string" then host.raise("dns.toip: a host name (a string)") end
  local answer = net("resolve", {id = 0}, name)
  if answer.error then return nil, answer.error end
  return answer.ip
end
function socket.dns.gethostname() return "hubrt-hub" end

-- Ready receivers and senders among those given, or nil, nil, "timeout".
function socket.select(receivers, senders, timeout)
  return yield(receivers, senders, timeout)
end

function socket.sleep(seconds)
  if type(seconds) ~= "number" or not (seconds >= 0) then
    host.raise("sleep: a number of seconds >= 0, got " .. tostring(seconds))
  end
  yield(nil, nil, seconds)
end

-- Seconds since the epoch, fractional, on the hub's clock.
function socket.gettime()
  return host.gettime()
end

-- The hub's message channels (socket.capability() and the rest). hubrt hands hub messages to the
-- driver's threads itself, so these receivers exist (a driver may look at them) but never receive.
for _, name in ipairs{"capability", "device_lifecycle", "driver_lifecycle", "environment_update", "discovery"} do
  socket[name] = function()
    local _, receiver = require("cosock.channel").new()
    return receiver
  end
end

-- What the hub delivers (a `net` dispatch): bytes, datagrams, a closed or reset connection.
function deliver(events)
  for _, event in ipairs(events) do
    local sock = sockets[event.sock]
    if sock then
      if event.data then
        if sock.kind == "udp" then
          sock.queue[#sock.queue + 1] = {data = event.data, from = event.from}
        else
          sock.buf = sock.buf .. event.data
          sock.need_more = false
        end
      end
      if event.accepted and sock.state == "listening" then -- a client connected
        local client = new_socket("tcp", Tcp, event.accepted)
        client.state, client.peer, client.me = "connected", event.peer, event["local"]
        sock.clients[#sock.clients + 1] = client
      end
      if event.connected and sock.state == "connecting" then
        sock.state, sock.peer, sock.me = "connected", event.peer, event["local"]
      end
      if event.closed then sock.peer_closed = true end
      if event.error then sock.error = event.error end
      wake(sock, "recvr")
      wake(sock, "sendr")
    end
  end
end

socket._deliver = deliver

return socket
