-- `require "sha1"`: SHA-1 digests and HMACs, hex or raw (`sha1(text)` is `sha1.sha1(text)`).
local _, host = ...

local function check(name, ...)
  for i = 1, select("#", ...) do
    if type((select(i, ...))) ~= "string" then host.raise(name .. " expects strings") end
  end
end

local function hex(raw)
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local sha1 = {}

function sha1.binary(text) check("sha1.binary", text) return host.digest("sha1", text) end
function sha1.sha1(text) check("sha1.sha1", text) return hex(host.digest("sha1", text)) end
function sha1.hmac_binary(key, text) check("sha1.hmac_binary", key, text) return host.digest("sha1", text, key) end
function sha1.hmac(key, text) check("sha1.hmac", key, text) return hex(host.digest("sha1", text, key)) end

return setmetatable(sha1, {__call = function(_, text) return sha1.sha1(text) end})
