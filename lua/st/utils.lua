-- `require "st.utils"`: small helpers drivers use, written from their public descriptions and
-- how the public drivers call them. (The byte-serialising helpers that only Zigbee, Z-Wave and
-- Matter drivers call -- serialize_int, bitify... -- are not here.)
local utils = {}

function utils.round(x) return x >= 0 and math.floor(x + 0.5) or math.ceil(x - 0.5) end

function utils.clamp_value(value, min, max)
  if value < min then return min end
  if value > max then return max end
  return value
end

function utils.deep_copy(value, seen)
  if type(value) ~= "table" then return value end
  seen = seen or {}
  if seen[value] then return seen[value] end
  local copy = {}
  seen[value] = copy
  for k, v in pairs(value) do copy[utils.deep_copy(k, seen)] = utils.deep_copy(v, seen) end
  return copy
end

function utils.merge(base, overrides)
  for k, v in pairs(overrides or {}) do
    if type(v) == "table" and type(base[k]) == "table" then utils.merge(base[k], v) else base[k] = v end
  end
  return base
end

local sorted_keys = require("hubrt.tables").sorted_keys

function utils.stringify_table(value, name, multiline, indent, seen)
  indent = indent or 0
  seen = seen or {}
  local prefix = name and (tostring(name) .. ": ") or ""
  if type(value) ~= "table" then
    return prefix .. (type(value) == "string" and string.format("%q", value) or tostring(value))
  end
  if seen[value] then return prefix .. "<cycle>" end
  seen[value] = true
  local parts = {}
  local pad = multiline and string.rep("  ", indent + 1) or ""
  for _, k in ipairs(sorted_keys(value)) do
    local key = type(k) == "string" and k or "[" .. tostring(k) .. "]"
    parts[#parts + 1] = pad .. key .. "=" .. utils.stringify_table(value[k], nil, multiline, indent + 1, seen)
  end
  seen[value] = nil
  if multiline then
    return prefix .. "{\n" .. table.concat(parts, ",\n") .. "\n" .. string.rep("  ", indent) .. "}"
  end
  return prefix .. "{" .. table.concat(parts, ", ") .. "}"
end

function utils.table_size(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- The keys of a table from the largest down, with their values: for k, v in utils.rkeys(t).
function utils.rkeys(t)
  local keys = sorted_keys(t)
  local i = #keys + 1
  return function()
    i = i - 1
    if i > 0 then return keys[i], t[keys[i]] end
  end
end

function utils.f_to_c(f) return (f - 32) * 5 / 9 end
function utils.c_to_f(c) return c * 9 / 5 + 32 end

function utils.bytes_to_hex_string(bytes)
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- An integer as `length` bytes (big-endian unless `little_endian`); a negative value when
-- `signed` is stored in two's complement.
function utils.serialize_int(value, length, signed, little_endian)
  if math.type and math.type(value) == "float" or value % 1 ~= 0 then
    error("serialize_int: an integer, got " .. tostring(value), 2)
  end
  local span = 2 ^ (8 * length)
  if (signed and (value < -span / 2 or value >= span / 2)) or (not signed and (value < 0 or value >= span)) then
    error(string.format("serialize_int: %s does not fit in %d %s bytes", tostring(value), length,
                        signed and "signed" or "unsigned"), 2)
  end
  if value < 0 then value = value + span end
  local bytes = {}
  for i = length, 1, -1 do
    bytes[i] = string.char(math.floor(value % 256))
    value = math.floor(value / 256)
  end
  local out = table.concat(bytes)
  return little_endian and out:reverse() or out
end

-- The integer in the first `length` bytes of `buf` (see serialize_int).
function utils.deserialize_int(buf, length, signed, little_endian)
  local bytes = buf:sub(1, length)
  if #bytes < length then error("deserialize_int: " .. #bytes .. " bytes, " .. length .. " needed", 2) end
  if little_endian then bytes = bytes:reverse() end
  local value = 0
  for i = 1, length do value = value * 256 + bytes:byte(i) end
  if signed and value >= 2 ^ (8 * length - 1) then value = value - 2 ^ (8 * length) end
  return math.tointeger and math.tointeger(value) or value
end

function utils.generate_uuid_v4()
  local hex = "0123456789abcdef"
  return (("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"):gsub("[xy]", function(c)
    local v = c == "x" and math.random(0, 15) or math.random(8, 11)
    return hex:sub(v + 1, v + 1)
  end))
end

-- Colours as the platform's capabilities give them: hue and saturation (and value, lightness)
-- in percent (0-100); red, green and blue 0-255.
local function hue_to_rgb(h, s, v) -- h in [0, 6), s and v in [0, 1]
  local c = v * s
  local x = c * (1 - math.abs(h % 2 - 1))
  local r, g, b
  if h < 1 then r, g, b = c, x, 0 elseif h < 2 then r, g, b = x, c, 0 elseif h < 3 then r, g, b = 0, c, x
  elseif h < 4 then r, g, b = 0, x, c elseif h < 5 then r, g, b = x, 0, c else r, g, b = c, 0, x end
  local m = v - c
  return utils.round((r + m) * 255), utils.round((g + m) * 255), utils.round((b + m) * 255)
end

function utils.hsv_to_rgb(hue, saturation, value)
  return hue_to_rgb((hue % 100) / 100 * 6, saturation / 100, (value or 100) / 100)
end

local function hue_of(r, g, b, max, delta)
  if delta == 0 then return 0 end
  local h
  if max == r then h = ((g - b) / delta) % 6 elseif max == g then h = (b - r) / delta + 2 else h = (r - g) / delta + 4 end
  return h / 6 * 100
end

function utils.rgb_to_hsv(red, green, blue)
  local r, g, b = red / 255, green / 255, blue / 255
  local max, min = math.max(r, g, b), math.min(r, g, b)
  local delta = max - min
  return hue_of(r, g, b, max, delta), max == 0 and 0 or delta / max * 100, max * 100
end

function utils.hsl_to_rgb(hue, saturation, lightness)
  local s, l = saturation / 100, (lightness or 50) / 100
  local v = l + s * math.min(l, 1 - l)
  return hue_to_rgb((hue % 100) / 100 * 6, v == 0 and 0 or 2 * (1 - l / v), v)
end

function utils.rgb_to_hsl(red, green, blue)
  local r, g, b = red / 255, green / 255, blue / 255
  local max, min = math.max(r, g, b), math.min(r, g, b)
  local delta, l = max - min, (max + min) / 2
  local s = (l == 0 or l == 1) and 0 or delta / (1 - math.abs(2 * l - 1))
  return hue_of(r, g, b, max, delta), s * 100, l * 100
end

return utils
