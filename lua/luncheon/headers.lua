-- `luncheon.headers`: HTTP headers in the order they came, looked up without regard to case
-- (and with `_` read as `-`, so get_one("content_length") finds Content-Length).
local Headers = {}
Headers.__index = Headers

local function norm(name)
  return (string.lower(name):gsub("_", "-"))
end

function Headers.new()
  return setmetatable({_entries = {}}, Headers)
end

function Headers:append(name, value)
  if type(name) ~= "string" then error("headers:append(name, value): a header name (a string)", 2) end
  self._entries[#self._entries + 1] = {name, tostring(value)}
  return self
end

-- One "Name: value" line; nil and why for a line that is not a header.
function Headers:append_chunk(line)
  local name, value = string.match(line or "", "^([^:%s][^:]*):%s*(.-)%s*$")
  if not name then return nil, "not an HTTP header: " .. tostring(line) end
  return self:append(name, value)
end

function Headers.from_chunk(text)
  local headers = Headers.new()
  for line in string.gmatch(text or "", "[^\r\n]+") do
    local ok, err = headers:append_chunk(line)
    if not ok then return nil, err end
  end
  return headers
end

function Headers:get_one(name)
  local wanted = norm(name)
  for _, entry in ipairs(self._entries) do
    if norm(entry[1]) == wanted then return entry[2] end
  end
  return nil
end

function Headers:get_all(name)
  local wanted, found = norm(name), {}
  for _, entry in ipairs(self._entries) do
    if norm(entry[1]) == wanted then found[#found + 1] = entry[2] end
  end
  return found
end

function Headers:replace(name, value)
  local wanted, kept = norm(name), {}
  for _, entry in ipairs(self._entries) do
    if norm(entry[1]) ~= wanted then kept[#kept + 1] = entry end
  end
  self._entries = kept
  return self:append(name, value)
end

-- Each header as its "Name: value" line.
function Headers:iter()
  local i = 0
  return function()
    i = i + 1
    local entry = self._entries[i]
    if entry then return entry[1] .. ": " .. entry[2] end
  end
end

function Headers:serialize()
  local lines = {}
  for line in self:iter() do lines[#lines + 1] = line .. "\r\n" end
  return table.concat(lines)
end

return Headers
