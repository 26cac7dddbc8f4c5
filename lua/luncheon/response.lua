-- `luncheon.response`: an HTTP response read from a server, or one to build and send.
local Headers = require "luncheon.headers"
local message = require "luncheon.message"

local Response = {}
Response.__index = function(self, key) return Response[key] or message.methods[key] end

local REASONS = {[200] = "OK", [201] = "Created", [204] = "No Content", [301] = "Moved Permanently",
                 [302] = "Found", [304] = "Not Modified", [400] = "Bad Request", [401] = "Unauthorized",
                 [403] = "Forbidden", [404] = "Not Found", [500] = "Internal Server Error",
                 [503] = "Service Unavailable"}

function Response.new(status, sock)
  status = tonumber(status) or 200
  return setmetatable({status = status, status_msg = REASONS[status] or "", http_version = "1.1",
                       headers = Headers.new(), body = "", socket = sock, _body_read = true}, Response)
end

function Response:_start_line()
  return string.format("HTTP/%s %d %s", self.http_version, self.status, self.status_msg or "")
end

function Response:get_status()
  return self.status
end

-- A response read from `source` (its head now, its body when asked): the response, or nil and why.
function Response.source(source)
  local start, headers = message.read_head(source)
  if not start then return nil, headers end
  local version, status, reason = string.match(start, "^HTTP/(%d%.%d)%s+(%d%d%d)%s*(.-)%s*$")
  if not version then return nil, "not an HTTP status line: " .. start end
  status = tonumber(status)
  local bodiless = status == 204 or status == 304 or (status >= 100 and status < 200)
  return setmetatable({status = status, status_msg = reason, http_version = version, headers = headers,
                       _source = source, _to_close = true, _body_read = bodiless, body = ""}, Response)
end

function Response.tcp_source(sock)
  local response, err = Response.source(message.tcp_source(sock))
  if response then response.socket = sock end
  return response, err
end

return Response
