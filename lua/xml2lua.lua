-- `require "xml2lua"`: XML parsing into a handler (xmlhandler.tree). The parsing is the
-- host's (expat, with entity declarations refused); a document that is not well-formed
-- raises an error, which drivers catch with pcall as they do on the hub.
local _, host = ...

local xml2lua = {_VERSION = "1.6 (hubrt)"}

local Parser = {}
Parser.__index = Parser

function xml2lua.parser(handler)
  if type(handler) ~= "table" then host.raise("xml2lua.parser(handler): a handler such as xmlhandler.tree:new()") end
  return setmetatable({handler = handler}, Parser)
end

function Parser:parse(xml)
  if type(xml) ~= "string" then error("xml2lua: the document must be a string, got " .. type(xml), 2) end
  local tree, err = host.xml_parse(xml)
  if not tree then error(err, 2) end
  self.handler.root = tree
  return self.handler
end

return xml2lua
