-- `lustre.config`: a WebSocket's limits and options, built by chaining:
-- `Config.default():keep_alive(30):protocol("chat")`.
local Config = {}
Config.__index = Config

local MAX_FRAME = 16 * 1024 * 1024
local MAX_MESSAGE = 64 * 1024 * 1024
local MAX_FRAMES_WITHOUT_PONG = 4

function Config.default()
  local protocols, extensions = {}, {}
  return setmetatable({
    _max_queue_size = nil,
    _max_frame_size = MAX_FRAME,
    max_message_size = MAX_MESSAGE, -- a field, as the hub's library has it (it hides the setter below)
    _max_frames_without_pong = MAX_FRAMES_WITHOUT_PONG,
    _keep_alive = nil, -- seconds of silence after which a ping is sent
    protocols = protocols, _protocols = protocols,
    extensions = extensions, _extensions = extensions,
    _extra_headers = {},
  }, Config)
end

function Config:max_queue_size(size) self._max_queue_size = size return self end
function Config:max_message_size(size) self.max_message_size = size or MAX_MESSAGE return self end
function Config:max_frame_size(size) self._max_frame_size = size or MAX_FRAME return self end
function Config:max_frames_without_pong(n) self._max_frames_without_pong = n or MAX_FRAMES_WITHOUT_PONG return self end
function Config:extension(name, params) table.insert(self._extensions, {name = name, params = params}) return self end
function Config:protocol(name) table.insert(self._protocols, name) return self end
function Config:keep_alive(seconds) self._keep_alive = seconds return self end
function Config:header(name, value) self._extra_headers[name] = value return self end

return Config
