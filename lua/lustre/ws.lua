-- `lustre.ws` (lustre.WebSocket): a WebSocket client on a cosock TCP socket, as drivers use the
-- hub's: `WebSocket.client(sock, "/path", config)`, callbacks for messages, errors and the
-- close, `connect(host, port)` (the handshake, then a task that receives), `send_text`,
-- `send_bytes`, `close(code, reason)`. As with the hub's library, the close callback runs after
-- a closing handshake and the error callback hears of a failure: a cut connection ("closed"),
-- unanswered keep-alive pings, or what the peer sends wrong (a broken frame, text that is not
-- UTF-8, a message over the limits: the connection is closed with the code RFC 6455 gives for
-- it). None of it is a Lua error in the driver.
local cosock = require "cosock"
local socket = require "cosock.socket"
local log = require "log"
local send_all = require("luncheon.utils").send_all
local Config = require "lustre.config"
local Frame = require "lustre.frame"
local FrameHeader = require "lustre.frame.frame_header"
local OpCode = require "lustre.frame.opcode"
local CloseCode = require("lustre.frame.close").CloseCode
local Handshake = require "lustre.handshake"
local Message = require "lustre.message"
local utils = require "lustre.utils"

local WebSocket = {}
WebSocket.__index = WebSocket

function WebSocket.client(sock, url, config)
  config = config or Config.default()
  return setmetatable({
    is_client = true, socket = sock, url = url or "/", config = config, state = "Connecting",
    handshake = Handshake.client(nil, config._protocols, config._extensions, config._extra_headers),
    id = math.random(),
  }, WebSocket)
end

function WebSocket.server() return nil, "not implemented: lustre makes WebSocket clients only" end
function WebSocket:accept() return nil, "not implemented: lustre makes WebSocket clients only" end

function WebSocket:register_message_cb(cb) self._message_cb = cb return self end
function WebSocket:register_error_cb(cb) self._error_cb = cb return self end
function WebSocket:register_close_cb(cb) self._close_cb = cb return self end

-- Connects, shakes hands and starts receiving: 1, or nil and why.
function WebSocket:connect(host, port)
  if not host or not port then return nil, "missing host or port" end
  local ok, err = self.socket:connect(host, port)
  if not ok then return nil, "socket connect failure: " .. tostring(err) end
  return self:client_handshake_and_start(host, port)
end

function WebSocket:client_handshake_and_start(host, port)
  local ok, err = self.handshake:send(self.socket, self.url, string.format("%s:%s", host, port))
  if not ok then
    self.socket:close()
    self.state = "Closed"
    return nil, "invalid handshake: " .. tostring(err)
  end
  self.state = "Active"
  self.socket:settimeout(nil) -- the receive loop waits for frames as long as it takes (or pings: keep_alive)
  cosock.spawn(function() self:_receive_loop() end, "lustre receive loop " .. tostring(self.url))
  return 1
end

function WebSocket:_send_frame(frame)
  return send_all(self.socket, frame:set_mask():encode())
end

-- Sends a message (a lustre Message), in frames of at most the configured size: 1, or nil and why.
function WebSocket:send(message)
  if self.state ~= "Active" then return nil, "the WebSocket is not open (" .. self.state .. ")" end
  if type(message) ~= "table" or type(message.data) ~= "string"
      or (message.type ~= "text" and message.type ~= "binary") then
    return nil, "send expects a text or binary message"
  end
  if message.type == "text" then
    local ok, why = utils.validate_utf8(message.data)
    if not ok then return nil, "text must be UTF-8: " .. why end
  end
  local data, size = message.data, self.config._max_frame_size
  local position = 1
  repeat
    local part = data:sub(position, position + size - 1)
    position = position + #part
    local header = FrameHeader.default()
      :set_opcode(position - #part == 1 and OpCode[message.type]() or OpCode.continue())
      :set_fin(position > #data)
    local ok, err = self:_send_frame(Frame.from_parts(header, part))
    if not ok then return nil, err end
  until position > #data
  return 1
end

function WebSocket:send_text(text) return self:send(Message.new("text", text)) end
function WebSocket:send_bytes(bytes) return self:send(Message.new("binary", bytes)) end

-- Starts the closing handshake; the close callback runs once the server has answered.
function WebSocket:close(close_code, reason)
  if self.state ~= "Active" then return nil, "the WebSocket is not open (" .. self.state .. ")" end
  self.state = "Closing"
  return self:_send_frame(Frame.close(close_code or CloseCode.normal(), reason))
end

local function call(ws, name, ...)
  local cb = ws[name]
  if cb == nil then return end
  local ok, err = pcall(cb, ...)
  if not ok then log.error("lustre: the WebSocket's " .. name:sub(2, -4) .. " callback failed: " .. tostring(err)) end
end

-- The end of the connection. After a closing handshake the close callback is told why; a
-- connection that failed (or was cut) was told through the error callback instead, as the
-- hub's library does it (drivers reconnect from either, not from both).
function WebSocket:_closed(reason, handshake)
  if self.state == "Closed" then return end
  self.state = "Closed"
  self.socket:close()
  if handshake then call(self, "_close_cb", reason) end
end

-- A failure on the peer's side: said with a close frame (code) where the connection still works.
function WebSocket:_fail(code, why)
  call(self, "_error_cb", why)
  if code and (self.state == "Active" or self.state == "Closing") then
    self:_send_frame(Frame.close(code, why:sub(1, 100)))
  end
  self:_closed(why)
end

-- Waits for the next frame, sending pings while the peer is quiet (config:keep_alive): the
-- frame, or nil and why the connection ended.
function WebSocket:_next_frame(quiet)
  local keep_alive = self.config._keep_alive
  while keep_alive do
    local ready = socket.select({self.socket}, nil, keep_alive)
    if ready and #ready > 0 then break end
    if quiet.pings >= self.config._max_frames_without_pong then
      return nil, CloseCode.policy(), "no response to keep alive ping commands" -- (the hub library's words)
    end
    quiet.pings = quiet.pings + 1
    self:_send_frame(Frame.ping())
  end
  local header, err = FrameHeader.from_stream(self.socket)
  if header == nil then
    if err == "closed" or err == "timeout" then return nil, nil, err end
    return nil, CloseCode.protocol(), err
  end
  if header.length > self.config.max_message_size then
    return nil, CloseCode.size(), "a frame of " .. header.length .. " bytes is over the message size limit"
  end
  local payload = ""
  if header.length > 0 then
    payload, err = self.socket:receive(header.length)
    if payload == nil then return nil, nil, err end
  end
  if header.mask then return nil, CloseCode.protocol(), "a server's frames are not masked" end
  return Frame.from_parts(header, payload)
end

-- The close codes a peer may send (RFC 6455 7.4: the others are reserved, or mean "no code").
local function sendable(code)
  return (code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014) or (code >= 3000 and code <= 4999)
end

function WebSocket:_receive_loop()
  local quiet = {pings = 0}
  local parts, kind, size = {}, nil, 0
  while self.state ~= "Closed" do
    local frame, code, why = self:_next_frame(quiet)
    if frame == nil then return self:_fail(code, why) end -- (no code: the socket was closed or broke)
    local sub = frame.header.opcode.sub
    if sub == "ping" then
      self:_send_frame(Frame.pong(frame.payload))
    elseif sub == "pong" then
      quiet.pings = 0
    elseif sub == "close" then
      local close_code = CloseCode.decode(frame.payload)
      local reason = frame.payload:sub(3)
      if #frame.payload == 1 or (#frame.payload > 1 and not sendable(close_code.value)) then
        return self:_fail(CloseCode.protocol(), "a close frame with no valid close code")
      elseif not utils.validate_utf8(reason) then
        return self:_fail(CloseCode.invalid(), "a close reason that is not UTF-8")
      end
      if self.state == "Active" then -- the server closes: answer in kind
        self.state = "Closing"
        self:_send_frame(Frame.close(close_code.value == 1005 and CloseCode.normal() or close_code))
      end
      return self:_closed(reason ~= "" and reason or (close_code.type or tostring(close_code.value)), true)
    else
      if (sub == "continue") ~= (kind ~= nil) then
        return self:_fail(CloseCode.protocol(), sub == "continue" and "a continuation frame with no message"
                          or "a new message before the last one ended")
      end
      kind = kind or sub
      size = size + #frame.payload
      if size > self.config.max_message_size then
        return self:_fail(CloseCode.size(), "a message of over " .. self.config.max_message_size .. " bytes")
      end
      parts[#parts + 1] = frame.payload
      if frame:is_final() then
        local data = table.concat(parts)
        parts, size = {}, 0
        if kind == "text" and not utils.validate_utf8(data) then
          return self:_fail(CloseCode.invalid(), "a text message that is not UTF-8")
        end
        local message = Message.new(kind, data)
        kind = nil
        call(self, "_message_cb", message)
      end
    end
  end
end

return WebSocket
