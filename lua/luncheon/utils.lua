-- `luncheon.utils`: helpers WebSocket and HTTP code share.
local message = require "luncheon.message"

return {
  send_all = message.send_all,
  tcp_socket_source = message.tcp_source,
}
