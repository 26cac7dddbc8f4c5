-- `require "xmlhandler.tree"`: the handler whose `root` holds the parsed document: each
-- element under its name; a leaf's value is its text; attributes under `_attr`; an element
-- name that occurs several times holds a list.
local tree = {}
tree.__index = tree

function tree:new()
  return setmetatable({root = {}, options = {noreduce = {}}}, tree)
end

return tree
