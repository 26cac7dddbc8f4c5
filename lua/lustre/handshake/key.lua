-- `lustre.handshake.key`: the Sec-WebSocket-Key a client sends and the Sec-WebSocket-Accept
-- a server derives from it (RFC 6455 section 4.2.2).
local base64 = require "st.base64"
local sha1 = require "sha1"

local GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

local function generate_key()
  local bytes = {}
  for i = 1, 16 do bytes[i] = string.char(math.random(0, 255)) end
  return base64.encode(table.concat(bytes))
end

local function build_accept_from(key)
  return base64.encode(sha1.binary(key .. GUID))
end

return {generate_key = generate_key, build_accept_from = build_accept_from}
