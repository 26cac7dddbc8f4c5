"""Hostile drivers: a catalogue of escape and abuse attempts, each run as a handler of a
driver on a hub that also runs an innocent driver. Every attempt must end in a Lua error
(logged by the hub, the driver going on), and the other driver must not notice."""

import pytest

from conftest import make_driver

# (name, handler body, text the logged error must contain -- or a tuple of alternatives)
CATALOGUE = [
    ("python global", "return python.eval('1')", "attempt to index"),
    ("python builtins", "return python.builtins.__import__('os')", "attempt to index"),
    ("io", "return io.open('/etc/passwd')", "attempt to index"),
    ("os.execute", "return os.execute('touch /tmp/pwned')", "attempt to call"),
    ("os.remove", "return os.remove('/tmp/x')", "attempt to call"),
    ("os.getenv", "return os.getenv('HOME')", "attempt to call"),
    ("require ffi", "return require('ffi')", "module 'ffi' not found"),
    ("require io", "return require('io')", "module 'io' not found"),
    ("require debug", "return require('debug')", "module 'debug' not found"),
    ("require host module", "return require('host.sandbox')", "host modules are not available"),
    ("require C module", "return require('socket.core')", "module 'socket.core' not found"),
    ("require path escape", "return require('../../../../etc/passwd')", "not a valid module name"),
    ("package.loadlib", "return package.loadlib('libc.so.6', 'system')", "attempt to index"),
    ("loadfile", "return loadfile('/etc/passwd')", "attempt to call"),
    ("dofile", "return dofile('/etc/passwd')", "attempt to call"),
    ("bytecode", "assert(load('\\27LuaQ\\0\\1\\4\\8\\4\\8\\0'))", "chunk"),
    ("string.dump", "return string.dump(print)", "attempt to call"),
    ("string method dump", "return ('').dump(print)", "attempt to call"),
    ("debug library", "return debug.getregistry()", "attempt to call"),
    ("debug.getinfo's function", "return debug.getinfo(2, 'f').func()", "attempt to call"),
    ("string metatable", "getmetatable('').__index.upper = nil", "attempt to index"),
    ("getfenv", "return getfenv(0)", "attempt to call"),
    ("jit", "jit.off()", "attempt to index"),
    ("collectgarbage", "collectgarbage('stop')", "attempt to call"),
    ("rawset on the datastore", "rawset(driver.datastore, 'x', print)", "bypass its validation"),
    ("rawset on a nested datastore table", "driver.datastore.t = {}; rawset(driver.datastore.t, 'x', 1)",
     "bypass its validation"),
    ("setmetatable on the datastore", "setmetatable(driver.datastore, {})", "cannot change"),
    ("getmetatable of the datastore", "assert(getmetatable(driver.datastore) ~= false, 'protected')",
     "protected"),
    ("next on the datastore", "driver.datastore.k = 1; assert(next(driver.datastore) ~= nil, 'raw-empty')",
     "raw-empty"),
    ("another driver's data", "assert(driver.datastore.victim_secret ~= nil, 'not visible')", "not visible"),
    ("another driver's globals", "assert(victim_global ~= nil, 'not visible either')", "not visible either"),
    ("memory bomb", "local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(2^20) .. i end", "not enough memory"),
    ("string bomb", "local s = ('x'):rep(2^27)", "not enough memory"),
    ("endless loop", "while true do end", "ran for more than"),
    ("endless loop inside pcall", "while true do pcall(function() while true do end end) end",
     "ran for more than"),
    ("endless loop inside xpcall", "xpcall(function() while true do end end, function(e) return e end)",
     "ran for more than"),
    ("endless loop inside a coroutine", "coroutine.wrap(function() while true do end end)()",
     "ran for more than"),
    ("endless loop inside a metamethod",
     "local t = setmetatable({}, {__index = function() while true do end end}); return t.x",
     "ran for more than"),
    ("endless loop in loaded code", "load('while true do end')()", "ran for more than"),
    ("deep recursion", "local function f(n) return 1 + f(n + 1) end; f(1)", "stack overflow"),
    # the datastore's internals through an iterator's results (issue 9, D1)
    ("backing table through pairs", "driver.datastore.a = {}; local _, raw = pairs(driver.datastore.a); raw.x = print",
     "attempt to index"),
    ("root backing table through pairs", "local _, raw = pairs(driver.datastore); raw.x = print", "attempt to index"),
    ("iterator state of pairs", "driver.datastore.b = {1}; local f, s = pairs(driver.datastore.b); "
     "assert(type(s) == 'table', 'no table handed out')", "no table handed out"),
    # what cannot be saved and reloaded, refused at the driver's line (D5, D6, D8)
    ("table too deep to save", "local t = {} local c = t for i = 1, 500 do c.n = {} c = c.n end "
     "driver.datastore.deep = t", "nested more than 100 levels"),
    ("number keys whose saved text collides", "driver.datastore.k = {[0.3] = 1}; driver.datastore.k[0.1 + 0.2] = 2",
     "reads back as another number"),
    ("NaN key", "driver.datastore.k2 = {}; driver.datastore.k2[0/0] = 1", "is NaN"),
    # hub time that is not a time (D9)
    ("NaN timer", "driver:call_with_delay(0/0, function() end)", "finite number of seconds"),
    ("error loop through tostring",
     "error(setmetatable({}, {__tostring = function() while true do end end}))",
     ("ran for more than", "error in error handling")),  # LuaJIT stops it inside its error handler
]

VICTIM = """
local capabilities = require "st.capabilities"
victim_global = "secret"
require("st.driver")("victim", {capability_handlers = {switch = {on = function(driver, device)
  driver.datastore.victim_secret = "kept"
  device:emit_event(capabilities.switch.switch.on())
end}}}):run()
"""


def hostile_driver() -> str:
    cases = "\n".join(f"  [{i}] = function(driver, device)\n    {code}\n  end,"
                      for i, (_, code, _) in enumerate(CATALOGUE, 1))
    return f"""
local attempts = {{
{cases}
}}
require("st.driver")("hostile", {{capability_handlers = {{switchLevel = {{
  setLevel = function(driver, device, command) return attempts[command.args.level](driver, device) end,
}}}}}}):run()
"""


def test_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 30


def test_every_attempt_fails_and_nobody_else_notices(new_hub, tmp_path, engine):
    hub = new_hub(handler_timeout=0.3, max_memory=64 * 2**20)
    hub.install(make_driver(tmp_path / "hostile", hostile_driver(), key="hostile"))
    hub.install(make_driver(tmp_path / "victim", VICTIM, key="victim"))
    hub.add_device("hostile", "switch", label="H")
    hub.add_device("victim", "switch", label="V")
    hub.command("V", "switch", "on")
    failures = []
    for i, (name, _, expected) in enumerate(CATALOGUE, 1):
        before = len(hub.logs)
        hub.command("H", "switchLevel", "setLevel", [i])
        errors = [r.text for r in list(hub.logs)[before:] if r.level == "error" and r.driver == "hostile"]
        alternatives = expected if isinstance(expected, tuple) else (expected,)
        if len(errors) != 1 or not any(text in errors[0] for text in alternatives):
            failures.append(f"{name}: expected one error containing {expected!r}, got {errors}")
        hub.command("V", "switch", "on")  # the other driver goes on, untouched
    assert not failures, "\n".join(failures)
    assert hub.store.load("victim")["victim_secret"] == "kept"
    assert [e.value for e in hub.events if e.device == "V"][-1] == "on"
    assert not any(r.driver == "victim" and r.level == "error" for r in hub.logs)
    hub.restart("graceful")  # and the hub itself is still sound
    assert hub.store.load("victim")["victim_secret"] == "kept"


@pytest.mark.parametrize("code", [
    "return python", "return io", "return package", "return jit", "return ffi",
    "return debug.sethook", "return debug.getlocal", "return debug.setupvalue", "return debug.getmetatable",
])
def test_no_host_object_is_even_visible(lua_hub, code):
    assert lua_hub.run(code) == (None,)
