-- Small table helpers shared by hubrt's own Lua modules.
local tables = {}

-- The keys of t in a stable order: numbers, then strings, each sorted; other types by type name.
function tables.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
    return type(a) < type(b)
  end)
  return keys
end

return tables
