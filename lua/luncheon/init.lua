-- `require "luncheon"`: HTTP/1.1 messages over cosock sockets (Request, Response, Headers).
return {
  Request = require "luncheon.request",
  Response = require "luncheon.response",
  Headers = require "luncheon.headers",
  utils = require "luncheon.utils",
}
