-- `lustre.utils`: UTF-8 checking (in Python) and a printable form of tables for logs.
local _, host = ...
local st_utils = require "st.utils"

local utils = {}

-- true, or nil, why and the 1-based position of the first byte that is not valid UTF-8.
function utils.validate_utf8(text)
  if type(text) ~= "string" then error("validate_utf8 expects a string, got " .. type(text), 2) end
  local position, why = host.utf8_error(text)
  if position == nil then return true end
  return nil, why, position
end

utils.stringify_table = st_utils.stringify_table
utils.table_string = st_utils.stringify_table

return utils
