-- `require "socket"` gives cosock's sockets, as on the hub.
return require "cosock.socket"
