-- `lustre.frame.close`: close codes (RFC 6455 section 7.4) and the payload of a close frame
-- (a 2-byte code, then a UTF-8 reason).
local CloseCode = {}
CloseCode.__index = CloseCode
local CloseFrame = {}
CloseFrame.__index = CloseFrame

local NAMES = {[1000] = "normal", [1001] = "away", [1002] = "protocol", [1003] = "unsupported",
               [1005] = "status", [1006] = "abnormal", [1007] = "invalid", [1008] = "policy",
               [1009] = "size", [1010] = "extension", [1011] = "error", [1012] = "restart",
               [1013] = "again", [1015] = "tls"}

-- A close code from its number; `type` names the standard ones (nil for an application's own).
function CloseCode.from_int(code)
  return setmetatable({value = code, type = NAMES[code]}, CloseCode)
end

for code, name in pairs(NAMES) do
  CloseCode[name] = function() return CloseCode.from_int(code) end
end

-- The code at the start of a close frame's payload; a payload without one means 1005
-- ("no status received").
function CloseCode.decode(bytes)
  if type(bytes) ~= "string" or #bytes < 2 then return CloseCode.from_int(1005) end
  local hi, lo = bytes:byte(1, 2)
  return CloseCode.from_int(hi * 256 + lo)
end

function CloseCode:encode()
  return string.char(math.floor(self.value / 256) % 256, self.value % 256)
end

function CloseFrame.from_parts(code, reason)
  return setmetatable({code = code, reason = reason or ""}, CloseFrame)
end

function CloseFrame.decode(bytes)
  return CloseFrame.from_parts(CloseCode.decode(bytes), (bytes or ""):sub(3))
end

function CloseFrame:encode() return self.code:encode() .. self.reason end

return {CloseCode = CloseCode, CloseFrame = CloseFrame}
