-- Lua 5.3 library functions that LuaJIT lacks but that can be written as
-- plain functions. (5.3 syntax -- //, bitwise operators -- cannot be shimmed;
-- neither can string.pack.) Installed into a driver environment under LuaJIT.

local env = ...
local floor, huge, select, type, error, unpack = math.floor, math.huge, select, type, error, unpack
local char, byte, format = string.char, string.byte, string.format

function env.table.pack(...)
  return {n = select("#", ...), ...}
end

env.table.unpack = unpack

-- LuaJIT's # already ignores __len on tables.
function env.rawlen(v)
  if type(v) ~= "table" and type(v) ~= "string" then
    error("table or string expected", 2)
  end
  return #v
end

-- LuaJIT has one number type; a whole number within 2^53 counts as an integer.
function env.math.type(x)
  if type(x) ~= "number" then return nil end
  if x == floor(x) and x > -2^53 and x < 2^53 then return "integer" end
  return "float"
end

function env.math.tointeger(x)
  if env.math.type(x) == "integer" then return x end
  return nil
end

function env.math.ult(a, b)
  if a >= 0 and b >= 0 or a < 0 and b < 0 then return a < b end
  return a >= 0
end

local utf8 = {charpattern = "[\0-\x7F\xC2-\xFD][\x80-\xBF]*"}

local function encode(c)
  if c < 0 or c > 0x7FFFFFFF then error("value out of range", 3) end
  if c < 0x80 then return char(c) end
  if c < 0x800 then return char(0xC0 + floor(c / 0x40), 0x80 + c % 0x40) end
  if c < 0x10000 then
    return char(0xE0 + floor(c / 0x1000), 0x80 + floor(c / 0x40) % 0x40, 0x80 + c % 0x40)
  end
  return char(0xF0 + floor(c / 0x40000), 0x80 + floor(c / 0x1000) % 0x40,
              0x80 + floor(c / 0x40) % 0x40, 0x80 + c % 0x40)
end

function utf8.char(...)
  local out = {}
  for i = 1, select("#", ...) do out[i] = encode((select(i, ...))) end
  return table.concat(out)
end

-- Decodes the sequence starting at byte i; returns code point and next index,
-- or nil when the bytes there are not valid UTF-8.
local function decode(s, i)
  local c = byte(s, i)
  if not c then return nil end
  if c < 0x80 then return c, i + 1 end
  local n, min
  if c >= 0xF0 and c < 0xF5 then n, c, min = 3, c - 0xF0, 0x10000
  elseif c >= 0xE0 then n, c, min = 2, c - 0xE0, 0x800
  elseif c >= 0xC2 and c < 0xE0 then n, c, min = 1, c - 0xC0, 0x80
  else return nil end
  for j = i + 1, i + n do
    local cc = byte(s, j)
    if not cc or cc < 0x80 or cc > 0xBF then return nil end
    c = c * 0x40 + (cc - 0x80)
  end
  if c < min or c > 0x10FFFF or (c >= 0xD800 and c <= 0xDFFF) then return nil end
  return c, i + n + 1
end

local function position(i, len)
  if i < 0 then return len + i + 1 end
  return i
end

function utf8.len(s, i, j)
  i, j = position(i or 1, #s), position(j or -1, #s)
  local n = 0
  while i <= j do
    local _, nxt = decode(s, i)
    if not nxt then return nil, i end
    n, i = n + 1, nxt
  end
  return n
end

function utf8.codepoint(s, i, j)
  i = position(i or 1, #s)
  j = position(j or i, #s)
  local out = {}
  while i <= j do
    local c, nxt = decode(s, i)
    if not c then error("invalid UTF-8 code", 2) end
    out[#out + 1], i = c, nxt
  end
  return unpack(out)
end

function utf8.codes(s)
  return function(str, i)
    i = i + 1
    while byte(str, i) and byte(str, i) >= 0x80 and byte(str, i) < 0xC0 do i = i + 1 end
    if i > #str then return nil end
    local c = decode(str, i)
    if not c then error("invalid UTF-8 code", 2) end
    return i, c
  end, s, 0
end

function utf8.offset(s, n, i)
  local len = #s
  i = position(i or (n >= 0 and 1 or len + 1), len)
  local function cont(k) local b = byte(s, k); return b and b >= 0x80 and b < 0xC0 end
  if n == 0 then
    while i > 1 and cont(i) do i = i - 1 end
    return i
  end
  if cont(i) then error("initial position is a continuation byte", 2) end
  if n > 0 then
    n = n - 1
    while n > 0 and i <= len do
      i = i + 1
      while cont(i) do i = i + 1 end
      n = n - 1
    end
  else
    while n < 0 and i > 1 do
      i = i - 1
      while i > 1 and cont(i) do i = i - 1 end
      n = n + 1
    end
  end
  if n == 0 then return i end
  return nil
end

env.utf8 = utf8
