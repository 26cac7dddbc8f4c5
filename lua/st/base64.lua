-- `require "st.base64"`: standard base64 (RFC 4648, with padding).
local _, host = ...

local base64 = {}

function base64.encode(data)
  if type(data) ~= "string" then host.raise("base64.encode expects a string, got " .. type(data)) end
  return host.base64(true, data)
end

-- The bytes, or nil and why for text that is not base64.
function base64.decode(text)
  if type(text) ~= "string" then host.raise("base64.decode expects a string, got " .. type(text)) end
  return host.base64(false, text)
end

return base64
