-- `lustre.message`: a whole WebSocket message: {type = "text" or "binary", data = its bytes}.
local Message = {}
Message.__index = Message

function Message.new(kind, data) return setmetatable({type = kind, data = data}, Message) end

return Message
