-- `require "st.json"`: JSON through the host's encoder (the same rules as the
-- datastore: a 1..n sequence is an array, any other table an object).
local _, host = ...

local json = {}

function json.encode(value)
  local text, err = host.json_encode(value)
  if not text then host.raise(err) end
  return text
end

function json.decode(text)
  if type(text) ~= "string" then host.raise("st.json.decode expects a string, got " .. type(text)) end
  local value, err = host.json_decode(text)
  if err then host.raise(err) end
  return value
end

-- The hub's module is also called to configure it (`require("st.json")({use_native = false})` picks
-- dkjson over the native encoder); hubrt has one encoder, so every configuration gets it.
return setmetatable(json, {__call = function(self) return self end})
