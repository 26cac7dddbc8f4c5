-- `require "st.net_utils"`: address checks LAN drivers make before they connect.
local net_utils = {}

-- True for a dotted-quad IPv4 address ("192.168.1.50"), each part 0..255 without leading zeros.
function net_utils.validate_ipv4_string(text)
  if type(text) ~= "string" then return false end
  local parts = {text:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")}
  if #parts ~= 4 then return false end
  for _, part in ipairs(parts) do
    if (#part > 1 and part:sub(1, 1) == "0") or tonumber(part) > 255 then return false end
  end
  return true
end

return net_utils
