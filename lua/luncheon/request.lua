-- `luncheon.request`: an HTTP request to build and send, or one read from a client.
local Headers = require "luncheon.headers"
local message = require "luncheon.message"

local Request = {}
Request.__index = function(self, key) return Request[key] or message.methods[key] end

function Request.new(method, url, sock)
  return setmetatable({method = method or "GET", url = url or "/", http_version = "1.1", headers = Headers.new(),
                       body = "", socket = sock, _body_read = true}, Request)
end

function Request:_start_line()
  local target = type(self.url) == "table" and self.url:build() or tostring(self.url)
  return string.format("%s %s HTTP/%s", self.method, target, self.http_version)
end

-- A request read from `source` (its head now, its body when asked): the request, or nil and why.
function Request.source(source)
  local start, headers = message.read_head(source)
  if not start then return nil, headers end
  local method, url, version = string.match(start, "^(%u+)%s+(%S+)%s+HTTP/(%d%.%d)$")
  if not method then return nil, "not an HTTP request line: " .. start end
  return setmetatable({method = method, url = url, http_version = version, headers = headers, _source = source},
                      Request)
end

function Request.tcp_source(sock)
  local request, err = Request.source(message.tcp_source(sock))
  if request then request.socket = sock end
  return request, err
end

return Request
