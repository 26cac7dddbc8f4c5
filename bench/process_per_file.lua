-- The way the platform's own tooling runs a driver's Lua tests, for `make bench`
-- to measure beside hubrt: one `lua5.3` process per test file, which declares
-- its tests and runs them one after another.
--
--   lua5.3 process_per_file.lua bare   TEST_FILE
--   lua5.3 process_per_file.lua driver TEST_FILE HUBRT_LUA_DIR DRIVER_SRC
--
-- `bare` loads nothing and only calls each test function: a lower bound.
-- `driver` does what that tooling does besides (facts from its public
-- description, no code of it): the platform libraries are loaded once per
-- process -- hubrt's own st.* modules stand in for them, over a host of
-- no-op functions -- and for each test the mocks are reset and the driver's
-- main chunk (src/init.lua) runs anew. The real libraries are larger, so this
-- too costs less than the real tooling.
local mode, test_file, lua_dir, driver_src = arg[1], arg[2], arg[3], arg[4]

local tests = {}
local test_module = setmetatable({}, {__call = function(_, name, fn) tests[#tests + 1] = {name, fn} end})
package.preload["hubrt.test"] = function() return test_module end

local start_driver = function() end
if mode == "driver" then
  local host = setmetatable({raise = error, where = function() return "" end},
                            {__index = function() return function() end end})
  local function runtime_module(name)
    local base = lua_dir .. "/" .. name:gsub("%.", "/")
    local chunk = loadfile(base .. ".lua") or assert(loadfile(base .. "/init.lua"))
    return chunk(name, host)
  end
  for _, name in ipairs{"st.driver", "st.device", "st.thread", "st.capabilities", "st.json", "st.utils", "log",
                        "hubrt.tables", "hubrt.logger", "cosock", "cosock.channel", "cosock.bus", "cosock.timer",
                        "cosock.socket"} do
    package.preload[name] = runtime_module
  end
  local store
  package.preload["datastore"] = function() return {init = function() return store end} end
  package.path = driver_src .. "/?.lua;" .. package.path
  for _, name in ipairs{"st.driver", "st.capabilities", "st.json", "st.utils", "log"} do require(name) end
  start_driver = function()
    store = {}                  -- the mocks, reset
    package.loaded.init = nil   -- so that the main chunk runs again
    require "init"
  end
elseif mode ~= "bare" then
  error("usage: lua5.3 process_per_file.lua bare|driver TEST_FILE [HUBRT_LUA_DIR DRIVER_SRC]")
end

dofile(test_file)
local passed = 0
for _, t in ipairs(tests) do
  print('Running test "' .. t[1] .. '"')
  local ok, err = pcall(function()
    start_driver()
    t[2]()
  end)
  if ok then passed = passed + 1; print("PASSED") else print("FAILED", err) end
end
print("Passed " .. passed .. " of " .. #tests .. " tests")
if passed < #tests then os.exit(1) end
