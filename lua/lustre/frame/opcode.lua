-- `lustre.frame.opcode`: what a WebSocket frame carries (RFC 6455 section 5.2), as
-- {type = "data" or "control", sub = its name, value = the 4-bit code}.
local OpCode = {}
OpCode.__index = OpCode

local KNOWN = {[0] = {"data", "continue"}, [1] = {"data", "text"}, [2] = {"data", "binary"},
               [8] = {"control", "close"}, [9] = {"control", "ping"}, [10] = {"control", "pong"}}
local VALUE = {continue = 0, text = 1, binary = 2, close = 8, ping = 9, pong = 10}

function OpCode.from(kind, sub, value)
  return setmetatable({type = kind, sub = sub, value = value or VALUE[sub]}, OpCode)
end

-- The opcode of a 4-bit code; nil and "invalid opcode" for a reserved one (3-7, 11-15).
function OpCode.decode(n)
  local known = KNOWN[n]
  if known == nil then return nil, "invalid opcode" end
  return OpCode.from(known[1], known[2], n)
end

function OpCode:encode() return self.value end

function OpCode.continue() return OpCode.from("data", "continue") end
function OpCode.text() return OpCode.from("data", "text") end
function OpCode.binary() return OpCode.from("data", "binary") end
function OpCode.close() return OpCode.from("control", "close") end
function OpCode.ping() return OpCode.from("control", "ping") end
function OpCode.pong() return OpCode.from("control", "pong") end

return OpCode
