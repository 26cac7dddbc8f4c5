-- `require "socket.http"` (and `cosock.asyncify "socket.http"`): LuaSocket's HTTP client,
-- over cosock sockets, so a request waits in its task only. Both forms:
--   body, code, headers, status = http.request(url [, body])
--   1, code, headers, status = http.request{url =, method =, headers =, source =, sink =}
-- Redirects are not followed (hubrt reports the 3xx as it came).
local socket = require "cosock.socket"
local ssl = require "cosock.ssl"
local url = require "socket.url"
local ltn12 = require "ltn12"

local http = {TIMEOUT = 60, USERAGENT = "LuaSocket 3.0 (hubrt)", PORT = 80}

local function read_headers(sock)
  local headers = {}
  while true do
    local line, err = sock:receive("*l")
    if not line then return nil, err end
    if line == "" then return headers end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if not name then return nil, "malformed response header: " .. line end
    name = name:lower()
    headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
  end
end

local function read_body(sock, headers, sink)
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    while true do
      local size_line, err = sock:receive("*l")
      if not size_line then return nil, err end
      local size = tonumber(size_line:match("^%s*(%x+)"), 16)
      if not size then return nil, "malformed chunk size: " .. size_line end
      if size == 0 then
        repeat local trailer = sock:receive("*l") until trailer == nil or trailer == ""
        return 1
      end
      local chunk, cerr = sock:receive(size)
      if not chunk then return nil, cerr end
      sink(chunk)
      sock:receive("*l")
    end
  end
  local length = tonumber(headers["content-length"])
  local data, err, partial
  if length then data, err, partial = sock:receive(length) else data, err, partial = sock:receive("*a") end
  if not data then
    if partial and #partial > 0 then sink(partial) end
    return nil, err
  end
  sink(data)
  return 1
end

local function request(reqt)
  local parsed, perr = url.parse(reqt.url or "")
  if not parsed or not parsed.host then return nil, perr or ("invalid url: " .. tostring(reqt.url)) end
  local https = parsed.scheme == "https"
  local port = tonumber(parsed.port) or (https and 443 or http.PORT)
  local sock = reqt.create and reqt.create() or socket.tcp()
  sock:settimeout(http.TIMEOUT)
  local ok, err = sock:connect(parsed.host, port)
  if not ok then return nil, err end
  if https then sock = ssl.wrap(sock, {mode = "client"}) sock:dohandshake() end
  local body_parts = {}
  if reqt.source then ltn12.pump.all(reqt.source, (ltn12.sink.table(body_parts))) end
  local body = table.concat(body_parts)
  local headers = {["host"] = parsed.host .. ((parsed.port and (":" .. parsed.port)) or ""),
                   ["user-agent"] = http.USERAGENT, ["connection"] = "close"}
  for name, value in pairs(reqt.headers or {}) do headers[string.lower(name)] = tostring(value) end
  if #body > 0 and not headers["content-length"] then headers["content-length"] = tostring(#body) end
  local lines = {string.format("%s %s%s HTTP/1.1", reqt.method or "GET", parsed.path ~= "" and parsed.path or "/",
                               parsed.query and ("?" .. parsed.query) or "")}
  for name, value in pairs(headers) do lines[#lines + 1] = name .. ": " .. value end
  local sent, serr = sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body)
  if not sent then sock:close() return nil, serr end
  local status, rerr = sock:receive("*l")
  if not status then sock:close() return nil, rerr end
  local code = tonumber(status:match("^HTTP/%d%.%d (%d%d%d)"))
  if not code then sock:close() return nil, "malformed status line: " .. status end
  local response_headers, herr = read_headers(sock)
  if not response_headers then sock:close() return nil, herr end
  local sink = reqt.sink or ltn12.sink.null()
  if reqt.method ~= "HEAD" and code ~= 204 and code ~= 304 then
    local done, berr = read_body(sock, response_headers, sink)
    if not done then sock:close() return nil, berr end
  end
  sink(nil)
  sock:close()
  return 1, code, response_headers, status
end

function http.request(reqt, body)
  if type(reqt) == "string" then
    local chunks = {}
    local t = {url = reqt, sink = ltn12.sink.table(chunks)}
    if body then
      t.method, t.source = "POST", ltn12.source.string(body)
      t.headers = {["content-type"] = "application/x-www-form-urlencoded"}
    end
    local ok, code, headers, status = request(t)
    if not ok then return nil, code end
    return table.concat(chunks), code, headers, status
  end
  if type(reqt) ~= "table" then error("http.request: a URL or a request table", 2) end
  return request(reqt)
end

return http
