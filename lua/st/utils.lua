-- `require "st.utils"`: small helpers drivers use, written from their public descriptions.
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

return utils
