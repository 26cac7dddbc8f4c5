-- `require "lustre"`: the WebSocket client library the hub ships (lustre.ws and its parts).
return {
  CloseCode = require("lustre.frame.close").CloseCode,
  Config = require "lustre.config",
  Frame = require "lustre.frame",
  Handshake = require "lustre.handshake",
  Opcode = require "lustre.frame.opcode",
  WebSocket = require "lustre.ws",
  Message = require "lustre.message",
}
