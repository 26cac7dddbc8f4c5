-- `require "st.utils"`: small helpers drivers use, written for hubrt from the library's
-- documented behaviour (ranges, rounding, bit order) and how the public drivers call them.
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

-- Fills in what `target` lacks from `template` (at every depth); what target has stays.
function utils.merge(target, template)
  for k, v in pairs(template or {}) do
    if target[k] == nil then target[k] = v
    elseif type(v) == "table" and type(target[k]) == "table" then utils.merge(target[k], v) end
  end
  return target
end

-- Overwrites what `target` already has with `template`'s values (at every depth); adds nothing.
function utils.update(target, template)
  for k, v in pairs(template or {}) do
    if target[k] ~= nil then target[k] = v
    elseif type(v) == "table" and type(target[k]) == "table" then utils.update(target[k], v) end
  end
  return target
end

function utils.verify_type(value, expected, name)
  if type(value) == expected then return end
  if name ~= nil then
    error(string.format("%s should be of type %s but was %s", name, expected, type(value)), 2)
  end
  error(string.format("Expected type %s but received %s", expected, type(value)), 2)
end

-- The text itself when it is printable, else every byte as \xHH.
function utils.get_print_safe_string(text)
  if text:match("^[%g ]+$") then return text end
  return (text:gsub(".", function(c) return string.format("\\x%02X", c:byte()) end))
end

local sorted_keys = require("hubrt.tables").sorted_keys -- (a stable order for printing)

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
  utils.verify_type(t, "table")
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- Iterators over a table in a sorted order: by key (`before(a, b)` orders keys; the default
-- is ascending) or by value; for k, v in utils.rkeys(t) walks the keys from the largest down.
local function ordered(t, keys)
  local i = 0
  return function()
    i = i + 1
    if keys[i] ~= nil then return keys[i], t[keys[i]] end
  end
end

local function keys_of(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  return keys
end

function utils.pairs_by_key(t, before)
  local keys = keys_of(t)
  table.sort(keys, before)
  return ordered(t, keys)
end

function utils.pairs_by_value(t, before)
  local keys = keys_of(t)
  table.sort(keys, function(a, b) return before(t[a], t[b]) end)
  return ordered(t, keys)
end

local function descending(a, b) return a > b end
local function ascending(a, b) return a < b end
function utils.fkeys(t) return utils.pairs_by_key(t) end
function utils.rkeys(t) return utils.pairs_by_key(t, descending) end
function utils.fvalues(t) return utils.pairs_by_value(t, ascending) end
function utils.rvalues(t) return utils.pairs_by_value(t, descending) end

function utils.rsort(list)
  table.sort(list, descending)
  return list
end

-- snake_case, camelCase, PascalCase and SCREAMING_SNAKE_CASE of an identifier or phrase.
function utils.camel_case(text)
  return (text:lower():gsub("[_ ](%a)", string.upper):gsub("[_ ]", ""))
end

function utils.pascal_case(text)
  return (utils.camel_case(text):gsub("^%l", string.upper))
end

function utils.snake_case(text)
  return (text:gsub("(%l)(%u)", "%1_%2"):gsub("(%d)(%a)", "%1_%2"):gsub("(%u)(%u%l)", "%1_%2"):lower())
end

function utils.screaming_snake_case(text) return utils.snake_case(text):upper() end

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

-- Bits, most significant first: bitify("\\5") is {0, 0, 0, 0, 0, 1, 0, 1}.
function utils.bitify(bytes)
  local bits = {}
  for i = 1, #bytes do
    local byte = bytes:byte(i)
    for weight = 7, 0, -1 do
      local bit = math.floor(byte / 2 ^ weight) % 2
      bits[#bits + 1] = bit
    end
  end
  return bits
end

function utils.bit_list_to_int(bits)
  local n = 0
  for _, bit in ipairs(bits) do
    if bit ~= 0 and bit ~= 1 then error("bit_list must contain only 1s and 0s", 2) end
    n = n * 2 + bit
  end
  return math.tointeger and math.tointeger(n) or n
end

function utils.bit_list_to_byte_str(bits)
  if #bits % 8 ~= 0 then error("Bit list length must be a multiple of 8", 2) end
  local bytes = {}
  for i = 1, #bits, 8 do
    bytes[#bytes + 1] = string.char(utils.bit_list_to_int({table.unpack(bits, i, i + 7)}))
  end
  return table.concat(bytes)
end

-- A gas concentration in mol/m3 as ppm (24.45 L/mol at 25 °C).
function utils.mole_per_cubic_meter_to_ppm(value) return 24450 * value end

-- Colours. As in the platform's library: hsv_to_rgb and rgb_to_hsv work in [0, 1] (value is
-- full); hsl_to_rgb and rgb_to_hsl in percent and 0-255, rounded; CIE x, y (with luminance Y)
-- through sRGB (D65) for the xy helpers, whose "safe" forms scale x and y to 0-65536 and hue
-- and saturation to percent.
function utils.hsv_to_rgb(hue, saturation)
  if saturation <= 0 then return 1, 1, 1 end
  local sector = math.floor(hue * 6)
  local f = hue * 6 - sector
  local p, q, t = 1 - saturation, 1 - saturation * f, 1 - saturation * (1 - f)
  sector = sector % 6
  if sector == 0 then return 1, t, p elseif sector == 1 then return q, 1, p
  elseif sector == 2 then return p, 1, t elseif sector == 3 then return p, q, 1
  elseif sector == 4 then return t, p, 1 end
  return 1, p, q
end

local function hue_of(r, g, b, max, delta) -- in [0, 1)
  if delta <= 0 then return 0 end
  local h
  if r >= max then h = (g - b) / delta elseif g >= max then h = 2 + (b - r) / delta else h = 4 + (r - g) / delta end
  h = h / 6
  return h < 0 and h + 1 or h
end

function utils.rgb_to_hsv(red, green, blue)
  local max, min = math.max(red, green, blue), math.min(red, green, blue)
  local delta = max - min
  return hue_of(red, green, blue, max, delta), delta <= 0 and 0 or delta / max, max
end

function utils.hsl_to_rgb(hue, saturation, lightness)
  local h, s, l = hue / 100, saturation / 100, (lightness or 50) / 100
  if s <= 0 then return 255, 255, 255 end
  local q = l < 0.5 and l * (1 + s) or l + s - l * s -- (the library uses the second form for every l,
  local p = 2 * l - q                                  -- which leaves [0, 255] below 50%: hubrt does not)
  local function channel(t)
    t = t % 1
    if t < 1 / 6 then return p + (q - p) * 6 * t end
    if t < 1 / 2 then return q end
    if t < 2 / 3 then return p + (q - p) * (2 / 3 - t) * 6 end
    return p
  end
  return utils.round(channel(h + 1 / 3) * 255), utils.round(channel(h) * 255), utils.round(channel(h - 1 / 3) * 255)
end

function utils.rgb_to_hsl(red, green, blue)
  local r, g, b = red / 255, green / 255, blue / 255
  local max, min = math.max(r, g, b), math.min(r, g, b)
  local delta, l = max - min, (max + min) / 2
  local s = 0
  if delta > 0 then s = l < 0.5 and delta / (max + min) or delta / (2 - max - min) end
  return utils.round(hue_of(r, g, b, max, delta) * 100), utils.round(s * 100), utils.round(l * 100)
end

-- sRGB companding (IEC 61966-2-1) and its inverse
local function linear(c) return c > 0.04045 and ((c + 0.055) / 1.055) ^ 2.4 or c / 12.92 end
local function companded(c) return c <= 0.0031308 and 12.92 * c or 1.055 * c ^ (1 / 2.4) - 0.055 end
local function clamp01(c) return c < 0 and 0 or (c > 1 and 1 or c) end

-- red, green, blue in [0, 1] (the brightest full) of a CIE x, y and luminance Y
function utils.xy_to_rgb(x, y, Y)
  local X, Z = Y / y * x, Y / y * (1 - x - y)
  local r = clamp01(3.2404542 * X - 1.5371385 * Y - 0.4985314 * Z)
  local g = clamp01(-0.9692660 * X + 1.8760108 * Y + 0.0415560 * Z)
  local b = clamp01(0.0556434 * X - 0.2040259 * Y + 1.0572252 * Z)
  local max = math.max(r, g, b)
  return companded(r / max), companded(g / max), companded(b / max)
end

-- CIE x, y and luminance Y of red, green, blue in [0, 1]
function utils.rgb_to_xy(red, green, blue)
  local r, g, b = linear(red), linear(green), linear(blue)
  local X = 0.4124564 * r + 0.3575761 * g + 0.1804375 * b
  local Y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
  local Z = 0.0193339 * r + 0.1191920 * g + 0.9503041 * b
  local sum = X + Y + Z
  return X / sum, Y / sum, Y
end

-- x and y in 0-65536 (and Y) of a hue and saturation in percent (nil counts as 0)
function utils.safe_hsv_to_xy(hue, saturation)
  local x, y, Y = utils.rgb_to_xy(utils.hsv_to_rgb((hue or 0) / 100, (saturation or 0) / 100))
  return utils.round(x * 65536), utils.round(y * 65536), Y
end

-- hue, saturation and value in percent of x and y in 0-65536 (nil: 0) and luminance Y (nil: 1)
function utils.safe_xy_to_hsv(x, y, Y)
  local h, s, v = utils.rgb_to_hsv(utils.xy_to_rgb((x or 0) / 65536, (y or 0) / 65536, Y or 1))
  return utils.round(h * 100), utils.round(s * 100), utils.round(v * 100)
end

-- fn, logging each call with its arguments (each cut to 25 characters below trace level).
function utils.log_func_wrapper(fn, name, level)
  local log = require "log"
  level = level or log.LOG_LEVEL_DEBUG
  return function(...)
    local shown = {}
    for i = 1, select("#", ...) do
      local text = utils.stringify_table((select(i, ...)))
      shown[i] = (#text > 25 and level ~= log.LOG_LEVEL_TRACE) and text:sub(1, 26) or text
    end
    log.log({}, level, "call to " .. name .. ": " .. table.concat(shown))
    return fn(...)
  end
end

-- An exponential backoff: each call the next wait, inc * (2^n - 1) capped at max, plus a random
-- part in (-rand, rand), never below 0.
function utils.backoff_builder(max, inc, rand)
  local n = 0
  inc = inc or 1
  return function()
    local wait = inc * (2 ^ n - 1)
    n = n + 1
    if max then wait = math.min(wait, max) end
    local jitter = rand and (math.random() * 2 - 1) * rand or 0
    return math.max(wait + jitter, 0)
  end
end

return utils
