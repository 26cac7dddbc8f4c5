-- `require "net.url"`: net-url's parse/build. A parsed URL has scheme, user, password,
-- host, port (a number), authority, path, query (a table of names to values) and fragment, and
-- `:build()` (or tostring) gives its text back.
local socket_url = require "socket.url"

local M = {}
local Url = {}
Url.__index = Url

local function parse_query(text)
  local query = {}
  for pair in string.gmatch(text or "", "[^&]+") do
    local name, value = pair:match("^([^=]*)=?(.*)$")
    query[socket_url.unescape((name:gsub("+", " ")))] = socket_url.unescape((value:gsub("+", " ")))
  end
  return query
end

local function build_query(query)
  local names = {}
  for name in pairs(query) do names[#names + 1] = name end
  table.sort(names)
  local pairs_ = {}
  for _, name in ipairs(names) do
    pairs_[#pairs_ + 1] = socket_url.escape(tostring(name)) .. "=" .. socket_url.escape(tostring(query[name]))
  end
  return table.concat(pairs_, "&")
end

function M.parse(text)
  local parts = socket_url.parse(text)
  if parts == nil then return nil end
  local u = setmetatable({scheme = parts.scheme, user = parts.user, password = parts.password, host = parts.host,
                          port = tonumber(parts.port), path = parts.path or "", fragment = parts.fragment}, Url)
  u.query = parse_query(parts.query)
  if u.host then
    u.authority = (u.user and (u.user .. (u.password and (":" .. u.password) or "") .. "@") or "") .. u.host
                  .. (u.port and (":" .. u.port) or "")
  end
  return u
end

function Url:build()
  local query = build_query(self.query or {})
  return socket_url.build{scheme = self.scheme, host = self.host, port = self.port and tostring(self.port),
                          userinfo = self.user and (self.user .. (self.password and (":" .. self.password) or "")),
                          path = self.path, query = query ~= "" and query or nil, fragment = self.fragment}
end

Url.__tostring = Url.build

function Url:setQuery(query)
  self.query = type(query) == "string" and parse_query(query) or query
  return self
end

return M
