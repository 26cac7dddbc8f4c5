-- What requests and responses share: reading a head and a body from a source, building and
-- sending the text. A source is a function taking a receive pattern ("*l", a byte count or
-- "*a") and returning the data, or nil and an error (a socket's receive, for tcp sources).
local Headers = require "luncheon.headers"

local message = {}

function message.tcp_source(sock)
  return function(pattern) return sock:receive(pattern) end
end

-- The start line and the headers, up to the empty line; nil and why.
function message.read_head(source)
  local start, err = source("*l")
  if not start then return nil, err or "closed" end
  local headers = Headers.new()
  while true do
    local line, lerr = source("*l")
    if not line then return nil, lerr or "closed" end
    if line == "" then return start, headers end
    local ok, herr = headers:append_chunk(line)
    if not ok then return nil, herr end
  end
end

local function read_chunked(source)
  local parts = {}
  while true do
    local size_line, err = source("*l")
    if not size_line then return nil, err end
    local size = tonumber(string.match(size_line, "^%s*(%x+)") or "", 16)
    if not size then return nil, "malformed chunk size: " .. size_line end
    if size == 0 then
      repeat local trailer = source("*l") until trailer == nil or trailer == ""
      return table.concat(parts)
    end
    local chunk, cerr = source(size)
    if not chunk then return nil, cerr end
    parts[#parts + 1] = chunk
    source("*l")
  end
end

-- The body the headers announce: chunked, a Content-Length, or (when `to_close`) all until
-- the peer closes; "" when there is none.
function message.read_body(source, headers, to_close)
  if string.find(string.lower(headers:get_one("transfer-encoding") or ""), "chunked", 1, true) then
    return read_chunked(source)
  end
  local length = tonumber(headers:get_one("content-length"))
  if length then
    if length == 0 then return "" end
    return source(length)
  end
  if to_close then
    local all, err, partial = source("*a")
    if all then return all end
    if err == "closed" then return partial or "" end
    return nil, err
  end
  return ""
end

-- Methods of both kinds of message (each keeps `headers`, `body`, `socket`, `_source`).
local methods = {}

function methods:add_header(name, value)
  self.headers:append(name, value)
  return self
end

function methods:get_headers()
  return self.headers
end

function methods:set_body(body)
  self.body, self._body_read = body or "", true
  return self
end

function methods:append_body(more)
  self.body, self._body_read = (self.body or "") .. (more or ""), true
  return self
end

-- Reads the body from the source if it was not read yet: nil, or the error.
function methods:fill_body()
  if self._body_read or not self._source then return nil end
  local body, err = message.read_body(self._source, self.headers, self._to_close)
  self._body_read = true
  if not body then return err end
  self.body = body
  return nil
end

function methods:get_body()
  local err = self:fill_body()
  if err then return nil, err end
  return self.body or ""
end

function methods:serialize()
  local body = self.body or ""
  local head = self:_start_line() .. "\r\n"
  local headers = self.headers
  if #body > 0 and not headers:get_one("content-length") and not headers:get_one("transfer-encoding") then
    headers:append("Content-Length", #body)
  end
  return head .. headers:serialize() .. "\r\n" .. body
end

-- Sends `bytes` (the serialized message when nil) on the message's socket: 1, or nil and why.
function methods:send(bytes)
  if not self.socket then return nil, "this message has no socket to send on" end
  return message.send_all(self.socket, bytes or self:serialize())
end

function message.send_all(sock, data)
  local position = 1
  while position <= #data do
    local last, err = sock:send(data, position)
    if not last then return nil, err end
    position = last + 1
  end
  return 1
end

message.methods = methods

return message
