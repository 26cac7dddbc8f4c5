-- `require "socket.url"`: LuaSocket's URL functions. Splitting a URL is the host's
-- (Python's urllib); escaping and building are here.
local _, host = ...

local url = {_VERSION = "URL 1.0.3 (hubrt)"}

function url.escape(text)
  return (string.gsub(text, "([^A-Za-z0-9_])", function(c) return string.format("%%%02x", string.byte(c)) end))
end

function url.unescape(text)
  return (string.gsub(text, "%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- {scheme, authority, userinfo, user, password, host, port, path, query, fragment}; fields
-- the URL lacks come from `default`. nil and the reason for text that is not a URL.
function url.parse(text, default)
  if type(text) ~= "string" then return nil, "invalid url" end
  local parts, err = host.url_split(text)
  if not parts then return nil, err end
  local parsed = {}
  for k, v in pairs(default or {}) do parsed[k] = v end
  for k, v in pairs(parts) do parsed[k] = v end
  if parsed.port then parsed.port = tostring(parsed.port) end
  if parts.user then parsed.userinfo = parts.user .. (parts.password and (":" .. parts.password) or "") end
  if parts.host then
    parsed.authority = (parsed.userinfo and (parsed.userinfo .. "@") or "") .. parts.host
                       .. (parts.port and (":" .. parts.port) or "")
  end
  return parsed
end

function url.build(parsed)
  local out = {}
  if parsed.scheme then out[#out + 1] = parsed.scheme .. ":" end
  local authority = parsed.authority
  if parsed.host then
    authority = (parsed.userinfo and (parsed.userinfo .. "@") or "") .. parsed.host
                .. (parsed.port and (":" .. parsed.port) or "")
  end
  if authority then out[#out + 1] = "//" .. authority end
  out[#out + 1] = parsed.path or ""
  if parsed.query then out[#out + 1] = "?" .. parsed.query end
  if parsed.fragment then out[#out + 1] = "#" .. parsed.fragment end
  return table.concat(out)
end

return url
