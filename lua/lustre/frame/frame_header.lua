-- `lustre.frame.frame_header`: the head of a WebSocket frame (RFC 6455 section 5.2): FIN,
-- RSV1-3, the opcode, the mask bit and key, and the payload length (7 bits, or 16 or 64
-- more). Written with arithmetic rather than bit operators, so one file serves LuaJIT and
-- Lua 5.3. Broken input is nil and a reason, never an error.
local OpCode = require "lustre.frame.opcode"

local FrameHeader = {}
FrameHeader.__index = FrameHeader

local floor = math.floor
local LARGEST = 2 ^ 31 -- a frame longer than this is refused (no peer of a hub sends one)

local function bytes_of(n, count)
  local out = {}
  for i = count, 1, -1 do
    out[i] = string.char(n % 256)
    n = floor(n / 256)
  end
  return table.concat(out)
end

local function number_of(bytes)
  local n = 0
  for i = 1, #bytes do n = n * 256 + bytes:byte(i) end
  return n
end

-- Builds a header from its first two bytes, asking `more(n)` for the n bytes that follow
-- (the extended length, the mask key); nil and why for a head no peer may send.
local function parse(b1, b2, more)
  local header = setmetatable({}, FrameHeader)
  header.fin = b1 >= 128
  header.rsv1, header.rsv2, header.rsv3 = floor(b1 / 64) % 2 == 1, floor(b1 / 32) % 2 == 1, floor(b1 / 16) % 2 == 1
  local opcode, err = OpCode.decode(b1 % 16)
  if opcode == nil then return nil, err end
  header.opcode = opcode
  if header.rsv1 or header.rsv2 or header.rsv3 then return nil, "reserved bits set without an extension" end
  header.masked = b2 >= 128
  local length = b2 % 128
  header.length_length = length == 126 and 2 or length == 127 and 8 or 0
  if header.length_length > 0 then
    local bytes, why = more(header.length_length)
    if bytes == nil then return nil, why end
    if header.length_length == 8 and bytes:byte(1) >= 128 then return nil, "invalid length" end
    length = number_of(bytes)
  end
  if length > LARGEST then return nil, "frame too large" end
  header.length = length
  if opcode.type == "control" and (length > 125 or not header.fin) then
    return nil, "invalid control frame: control frames are final and at most 125 bytes"
  end
  header.mask_length = header.masked and 4 or 0
  if header.masked then
    local mask, why = more(4)
    if mask == nil then return nil, why end
    header.mask = mask
  end
  return header
end

-- Reads a header from a socket (`socket:receive(n)`); nil and the socket's error or why.
function FrameHeader.from_stream(socket)
  local function more(n)
    local bytes, err = socket:receive(n)
    if bytes == nil then return nil, err end
    return bytes
  end
  local head, err = more(2)
  if head == nil then return nil, err end
  return parse(head:byte(1), head:byte(2), more)
end

-- A header from the start of `bytes`.
function FrameHeader.decode(bytes)
  if type(bytes) ~= "string" or #bytes < 2 then return nil, "too short for a frame header" end
  local pos = 3
  local function more(n)
    if pos + n - 1 > #bytes then return nil, "too short for a frame header" end
    local part = bytes:sub(pos, pos + n - 1)
    pos = pos + n
    return part
  end
  return parse(bytes:byte(1), bytes:byte(2), more)
end

function FrameHeader.default()
  return setmetatable({fin = true, rsv1 = false, rsv2 = false, rsv3 = false, opcode = OpCode.text(),
                       masked = false, length = 0, length_length = 0, mask_length = 0}, FrameHeader)
end

function FrameHeader:len() return 2 + self.length_length + self.mask_length end
function FrameHeader:payload_len() return self.length end
function FrameHeader:is_masked() return self.masked end

function FrameHeader:set_fin(value) self.fin = value and true or false return self end
function FrameHeader:set_rsv1(value) self.rsv1 = value and true or false return self end
function FrameHeader:set_rsv2(value) self.rsv2 = value and true or false return self end
function FrameHeader:set_rsv3(value) self.rsv3 = value and true or false return self end
function FrameHeader:set_opcode(value) self.opcode = value return self end

function FrameHeader:set_length(value)
  self.length = value
  self.length_length = value <= 125 and 0 or value <= 65535 and 2 or 8
  return self
end

-- `mask`: a 4-byte key, or nil for an unmasked frame.
function FrameHeader:set_mask(mask)
  if mask ~= nil and (type(mask) ~= "string" or #mask ~= 4) then error("a frame's mask is 4 bytes (a string)", 2) end
  self.mask, self.masked, self.mask_length = mask, mask ~= nil, mask and 4 or 0
  return self
end

function FrameHeader:encode()
  local b1 = (self.fin and 128 or 0) + (self.rsv1 and 64 or 0) + (self.rsv2 and 32 or 0)
             + (self.rsv3 and 16 or 0) + self.opcode:encode()
  local len7 = self.length_length == 0 and self.length or self.length_length == 2 and 126 or 127
  local out = string.char(b1, (self.masked and 128 or 0) + len7)
  if self.length_length > 0 then out = out .. bytes_of(self.length, self.length_length) end
  return out .. (self.mask or "")
end

return FrameHeader
