-- `require "ltn12"`: LuaSocket's sources, sinks, filters and pumps.
-- A source is a function returning the next chunk (nil at the end; nil, err on an error);
-- a sink is a function taking a chunk (nil at the end) and returning 1, or nil, err.
local ltn12 = {source = {}, sink = {}, filter = {}, pump = {}, BLOCKSIZE = 2048, _VERSION = "LTN12 1.0.3 (hubrt)"}

function ltn12.source.empty() return function() return nil end end

function ltn12.source.error(err) return function() return nil, err end end

function ltn12.source.string(text)
  if text == nil then return ltn12.source.empty() end
  local position = 1
  return function()
    local chunk = string.sub(text, position, position + ltn12.BLOCKSIZE - 1)
    position = position + ltn12.BLOCKSIZE
    if chunk ~= "" then return chunk end
    return nil
  end
end

function ltn12.source.table(t)
  local i = 0
  return function() i = i + 1; return t[i] end
end

function ltn12.source.cat(...)
  local sources = {...}
  return function()
    while #sources > 0 do
      local chunk, err = sources[1]()
      if chunk then return chunk end
      if err then return nil, err end
      table.remove(sources, 1)
    end
    return nil
  end
end

-- A source whose chunks pass through `filter` first.
function ltn12.source.chain(source, filter)
  local done = false
  return function()
    if done then return nil end
    local chunk, err = source()
    if err then return nil, err end
    if chunk == nil then done = true end
    return filter(chunk)
  end
end

function ltn12.sink.table(t)
  t = t or {}
  return function(chunk)
    if chunk then t[#t + 1] = chunk end
    return 1
  end, t
end

function ltn12.sink.null() return function() return 1 end end

function ltn12.sink.error(err) return function() return nil, err end end

function ltn12.sink.chain(filter, sink)
  return function(chunk, err)
    local filtered = filter(chunk)
    if filtered ~= nil or chunk == nil then return sink(filtered, err) end
    return 1
  end
end

function ltn12.filter.chain(...)
  local filters = {...}
  return function(chunk)
    for _, f in ipairs(filters) do chunk = f(chunk) end
    return chunk
  end
end

-- Moves one chunk from source to sink: true while there is more.
function ltn12.pump.step(source, sink)
  local chunk, source_err = source()
  local ok, sink_err = sink(chunk, source_err)
  if chunk and ok then return 1 end
  return nil, source_err or sink_err
end

function ltn12.pump.all(source, sink, step)
  step = step or ltn12.pump.step
  while true do
    local ok, err = step(source, sink)
    if not ok then
      if err then return nil, err end
      return 1
    end
  end
end

return ltn12
