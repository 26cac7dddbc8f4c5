-- `require "dkjson"`: dkjson's API. Encoding is here, in Lua, so that `dkjson.null`, key
-- order and indentation are kept; decoding goes through the host's JSON parser.
local _, host = ...

local dkjson = {version = "dkjson 2.5 (hubrt)"}

dkjson.null = setmetatable({}, {__tojson = function() return "null" end, __tostring = function() return "null" end})

local escapes = {['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
                 ["\t"] = "\\t"}

function dkjson.quotestring(text)
  return '"' .. text:gsub('[%c"\\]', function(c) return escapes[c] or string.format("\\u%04x", c:byte()) end) .. '"'
end

local function is_array(t)
  local mt = getmetatable(t)
  if mt and mt.__jsontype then return mt.__jsontype == "array" end
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then return false end
    n = n + 1
  end
  for i = 1, n do if t[i] == nil then return false end end
  return true, n
end

local function encode(value, state, depth, out)
  local kind = type(value)
  if value == nil or value == dkjson.null then
    out[#out + 1] = "null"
  elseif kind == "boolean" then
    out[#out + 1] = tostring(value)
  elseif kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then
      out[#out + 1] = "null"
    elseif math.type and math.type(value) == "integer" or (value % 1 == 0 and math.abs(value) < 2^53) then
      out[#out + 1] = string.format("%d", value)
    else
      out[#out + 1] = string.format("%.17g", value)
    end
  elseif kind == "string" then
    out[#out + 1] = dkjson.quotestring(value)
  elseif kind == "table" then
    if depth > 200 then error("dkjson.encode: tables nested too deep (a cycle?)", 0) end
    local indent = state.indent and ("\n" .. string.rep("  ", depth + 1)) or ""
    local close = state.indent and ("\n" .. string.rep("  ", depth)) or ""
    local array, n = is_array(value)
    if array then
      n = n or #value
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = indent
        encode(value[i], state, depth + 1, out)
      end
      out[#out + 1] = (n > 0 and close or "") .. "]"
    else
      local keys = {}
      for k in pairs(value) do
        if type(k) ~= "string" and type(k) ~= "number" then
          error("dkjson.encode: a key of type " .. type(k) .. " cannot be a JSON key", 0)
        end
        keys[#keys + 1] = k
      end
      local order
      for i, k in ipairs(state.keyorder or {}) do order = order or {}; order[k] = i end
      table.sort(keys, function(a, b)
        local ia, ib = order and order[a], order and order[b]
        if ia or ib then return (ia or math.huge) < (ib or math.huge) end
        return tostring(a) < tostring(b)
      end)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = indent .. dkjson.quotestring(tostring(k)) .. (state.indent and ": " or ":")
        encode(value[k], state, depth + 1, out)
      end
      out[#out + 1] = (#keys > 0 and close or "") .. "}"
    end
  else
    error("dkjson.encode: a value of type " .. kind .. " cannot be encoded as JSON", 0)
  end
end

-- The JSON text of `value`; `state` may ask for `indent` and a `keyorder`.
function dkjson.encode(value, state)
  state = type(state) == "table" and state or {}
  local out = {}
  local ok, err = pcall(encode, value, state, 0, out)
  if not ok then
    if state.exception then return state.exception("unsupported type", value, state, err) end
    host.raise(err)
  end
  return table.concat(out)
end

-- The value of the JSON text from `position` (1), and the position after it; or nil, the
-- position and the reason. JSON null becomes `null_value` (nil unless given).
function dkjson.decode(text, position, null_value)
  if type(text) ~= "string" then return nil, 1, "dkjson.decode expects a string, got " .. type(text) end
  position = position or 1
  local value, err = host.json_decode(text:sub(position))
  if err then return nil, position, err end
  if null_value ~= nil then
    -- the host's parser drops nulls; a text that is null itself is the one case seen here
    if text:sub(position):match("^%s*null%s*$") then value = null_value end
  end
  return value, #text + 1
end

function dkjson.use_lpeg() return dkjson end

return dkjson
