-- `lustre.frame`: one WebSocket frame: a header and its (unmasked) payload. Masking, the XOR of
-- the payload with the 4-byte key, crosses into Python (wsproto's masker).
local _, host = ...
local FrameHeader = require "lustre.frame.frame_header"
local OpCode = require "lustre.frame.opcode"
local CloseFrame = require("lustre.frame.close").CloseFrame

local Frame = {MAX_CONTROL_FRAME_LENGTH = 125}
Frame.__index = Frame

local function new(header, payload)
  return setmetatable({header = header, payload = payload or ""}, Frame)
end

-- The next frame from a socket; nil and the socket's error, or why the frame is broken.
function Frame.from_stream(socket)
  local header, err = FrameHeader.from_stream(socket)
  if header == nil then return nil, err end
  local payload = ""
  if header.length > 0 then
    payload, err = socket:receive(header.length)
    if payload == nil then return nil, err end
  end
  if header.mask then payload = host.ws_mask(payload, header.mask) end
  return new(header, payload)
end

-- A frame from a string holding the whole of it.
function Frame.decode(bytes)
  local header, err = FrameHeader.decode(bytes)
  if header == nil then return nil, err end
  local payload = bytes:sub(header:len() + 1, header:len() + header.length)
  if #payload < header.length then return nil, "too short for its payload" end
  if header.mask then payload = host.ws_mask(payload, header.mask) end
  return new(header, payload)
end

function Frame.from_parts(header, payload, apply_mask)
  payload = payload or ""
  if type(payload) ~= "string" then error("a frame's payload is a string, got " .. type(payload), 2) end
  header:set_length(#payload)
  local frame = new(header, payload)
  if apply_mask then frame:set_mask() end
  return frame
end

local function control(opcode, payload)
  return Frame.from_parts(FrameHeader.default():set_opcode(opcode), payload)
end

function Frame.ping(payload) return control(OpCode.ping(), payload) end
function Frame.pong(payload) return control(OpCode.pong(), payload) end
function Frame.close(close_code, reason)
  return control(OpCode.close(), close_code and CloseFrame.from_parts(close_code, reason):encode() or "")
end

function Frame:len() return self.header:len() + self.header:payload_len() end
function Frame:payload_len() return self.header:payload_len() end
function Frame:payload_is_masked() return false end -- the payload is kept unmasked; encode() masks it
function Frame:is_final() return self.header.fin end
function Frame:is_control() return self.header.opcode.type == "control" end
function Frame:is_close() return self.header.opcode.sub == "close" end

-- A client masks what it sends: `mask`, or 4 random bytes.
function Frame:set_mask(mask)
  if mask == nil then
    mask = string.char(math.random(0, 255), math.random(0, 255), math.random(0, 255), math.random(0, 255))
  end
  self.header:set_mask(mask)
  return self
end

function Frame:encode()
  local payload = self.payload
  if self.header.mask then payload = host.ws_mask(payload, self.header.mask) end
  return self.header:encode() .. payload
end

return Frame
