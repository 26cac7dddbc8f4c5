"""Isolation (spec/datastore.md section 7, facts/lupa.md section 8): every escape fails with a Lua error."""

import pytest

from hubrt.engine import LuaState, LuaFailure


@pytest.mark.parametrize("name", [
    "python", "io", "debug", "package", "dofile", "loadfile", "module", "getfenv", "setfenv",
    "collectgarbage", "newproxy", "gcinfo", "jit", "ffi", "loadstring",
])
def test_dangerous_globals_are_absent(lua_hub, name):
    lua_hub.run(f"assert({name} == nil, '{name} is reachable')")


@pytest.mark.parametrize("name", ["execute", "remove", "rename", "getenv", "tmpname", "exit_", "setlocale"])
def test_os_is_reduced_to_time_functions(lua_hub, name):
    name = name.rstrip("_")
    if name == "exit":
        lua_hub.run("assert(type(os.exit) == 'function')")  # a driver crash, tested in test_stops
    else:
        lua_hub.run(f"assert(os.{name} == nil)")
    lua_hub.run("assert(type(os.time()) == 'number' and type(os.clock()) == 'number' and os.date('%Y'))")


@pytest.mark.parametrize("code, expected", [
    ("python.eval('1')", "attempt to index"),
    ("io.open('/etc/passwd')", "attempt to index"),
    ("os.execute('true')", "attempt to call"),
    ("require('ffi')", "module 'ffi' not found"),
    ("require('jit')", "module 'jit' not found"),
    ("require('io')", "module 'io' not found"),
    ("require('os')", "module 'os' not found"),
    ("require('host.sandbox')", "host modules are not available"),
    ("require('../../etc/passwd')", "module '../../etc/passwd' not found"),
    ("require('socket.core')", "module 'socket.core' not found"),
    ("package.loadlib('libc.so.6', 'system')", "attempt to index"),
    ("string.dump(print)", "attempt to call"),
    ("('').dump(function() end)", "attempt to call"),
    ("debug.getregistry()", "attempt to index"),
    ("local g = getfenv(0).python", "attempt to call"),
])
def test_escape_attempts_raise_lua_errors(lua_hub, code, expected):
    message = lua_hub.fails(code)
    assert expected in message, message


def test_bytecode_is_refused(lua_hub):
    lua_hub.run(r"""
        local f, err = load("\27LuaQ\0\1\4\8\4\8\0")
        assert(f == nil and (err:find("binary") or err:find("wrong mode")), tostring(err))
        local g, err2 = load("return 1", "chunk", "b")
        assert(g ~= nil, "a text chunk loads whatever mode is asked for")
        assert(load("return python")() == nil, "loaded code gets the sandbox environment")
    """)


def test_string_metatable_is_not_handed_out(lua_hub):
    lua_hub.run("""
        assert(getmetatable("") == nil)
        string.upper = function() return "hacked" end   -- only the driver's own copy
        assert(("x"):upper() == "X")
    """)


def test_datastore_tables_cannot_be_bypassed(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.t = {}
        assert(getmetatable(ds) == false and getmetatable(ds.t) == false)
        local ok, err = pcall(rawset, ds, "x", print)
        assert(not ok and err:find("bypass"), err)
        ok, err = pcall(rawset, ds.t, "x", print)
        assert(not ok and err:find("bypass"))
        ok, err = pcall(setmetatable, ds.t, {})
        assert(not ok)
        assert(rawget(ds, "t") == nil and next(ds) == nil, "datastore tables are raw-empty, as on the hub")
    """)


def test_python_objects_expose_no_attributes(lua_hub):
    lua_hub.lua.env[b"host_function"] = print
    lua_hub.lua.env[b"host_object"] = object()
    for code in ["return host_function.__globals__", "return host_function.__self__",
                 "return host_object.__class__", "return host_object.__class__.__subclasses__"]:
        message = lua_hub.fails(code)
        assert "not accessible" in message or "attribute" in message.lower(), message


def test_error_objects_from_the_runtime_are_strings(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        local ok, err = pcall(function() ds.f = print end)
        assert(type(err) == "string", type(err))
        ok, err = pcall(function() ds.save = 1 end)
        assert(type(err) == "string")
    """)


def test_each_driver_has_its_own_state_and_datastore(lua_hub):
    lua_hub.run("""
        shared_global = "driver"
        require("datastore").init().secret = "mine"
    """)
    other = lua_hub.hub.start_driver("other")
    reader = other.state.runtime.eval(
        b"function(env) return load('return shared_global, require(\"datastore\").init().secret', 'x', 't', env) end")
    assert other.state.call(reader(other.state.env)) == (None, None)


def test_memory_cap_stops_a_memory_bomb(engine):
    state = LuaState(engine, max_memory=16 * 2**20)
    f = state.runtime.eval(b"""function(env) return load([[
        local t = {}
        for i = 1, 1e8 do t[i] = ("x"):rep(1024) .. i end
    ]], "=bomb", "t", env) end""")(state.env)
    with pytest.raises(LuaFailure) as info:
        state.call(f)
    assert "memory" in info.value.message
    # the state is still usable afterwards
    g = state.runtime.eval(b"function(env) return load('return 1 + 1', '=ok', 't', env) end")(state.env)
    assert state.call(g) == (2,)


def test_lua53_only_syntax_under_luajit_names_the_flag(tmp_path):
    from conftest import hubrt
    script = tmp_path / "modern.lua"
    script.write_text("local x = 7 // 2\nprint(x)\n")
    result = hubrt("lua", str(script), "--state", str(tmp_path / "s"), cwd=tmp_path)
    assert result.returncode == 1
    assert "modern.lua:1:" in result.stderr and "--lua 5.3" in result.stderr
    result = hubrt("lua", str(script), "--lua", "5.3", "--state", str(tmp_path / "s"), cwd=tmp_path, check=True)
    assert result.stdout.strip() == "3"


def test_lua53_library_functions_under_luajit(lua_hub):
    lua_hub.run("""
        local p = table.pack(1, nil, 3)
        assert(p.n == 3 and p[3] == 3)
        assert(select("#", table.unpack({1, 2, 3})) == 3)
        assert(math.type(1) == "integer" and math.type(1.5) == "float" and math.type("1") == nil)
        assert(math.tointeger(3) == 3 and math.tointeger(3.5) == nil)
        assert(utf8.char(72, 228, 8364, 128512) == "H\\xC3\\xA4\\xE2\\x82\\xAC\\xF0\\x9F\\x98\\x80")
        assert(utf8.len("H\\xC3\\xA4\\xE2\\x82\\xAC") == 3)
        assert(utf8.len("\\xFF") == nil)
        local cps = {}
        for _, c in utf8.codes("a\\xC3\\xA4") do cps[#cps + 1] = c end
        assert(cps[1] == 97 and cps[2] == 228)
        assert(utf8.codepoint("\\xE2\\x82\\xAC") == 8364)
        assert(utf8.offset("a\\xC3\\xA4b", 3) == 4)
    """)


def test_os_date_and_time_errors_name_the_drivers_line(lua_hub, engine):
    message = lua_hub.fails('os.time({year = "x"})')
    assert message == "driver.lua:1: field 'day' missing in date table", message
    if engine == "5.3":  # LuaJIT's strftime takes any conversion
        message = lua_hub.fails('os.date("%Ez")')
        assert message == "driver.lua:1: bad argument #1 to 'os.date' (invalid conversion specifier '%Ez')", message


def test_event_values_are_checked_every_time_they_could_be_wrong(lua_hub):
    """A value found valid once is not sent for checking again; a different value, or the same one
    with a unit, still is."""
    lua_hub.run("""
        local caps = require "st.capabilities"
        for _ = 1, 3 do assert(caps.switchLevel.level(50).state.value == 50) end
        for _, bad in ipairs{150, -1, 50.5, "50"} do
          local ok, err = pcall(caps.switchLevel.level, bad)
          assert(not ok and err:find("switchLevel.level"), tostring(bad) .. ": " .. tostring(err))
        end
        local ok, err = pcall(caps.switchLevel.level, {value = 50, unit = "parsecs"})
        assert(not ok and err:find("unit"), err)
        assert(caps.switch.switch.on().state.value == "on")
        ok, err = pcall(caps.switch.switch, "sideways")
        assert(not ok and err:find("not one of"), err)
    """)


def test_st_utils_as_drivers_use_it(lua_hub):
    lua_hub.run("""
        local utils = require "st.utils"
        local function near(a, b) return math.abs(a - b) < 0.6 end
        assert(utils.table_size({a = 1, b = 2, 3}) == 3)
        local keys = {}
        for k, v in utils.rkeys({[3] = "c", [1] = "a", [2] = "b"}) do keys[#keys + 1] = k .. v end
        assert(table.concat(keys, ",") == "3c,2b,1a", table.concat(keys, ","))
        assert(near(utils.f_to_c(212), 100) and near(utils.c_to_f(-40), -40))
        assert(utils.bytes_to_hex_string("\\1\\171\\255") == "01abff")
        assert(utils.generate_uuid_v4():match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"))
        local r, g, b = utils.hsv_to_rgb(0, 100)
        assert(r == 255 and g == 0 and b == 0, r .. " " .. g .. " " .. b)
        r, g, b = utils.hsv_to_rgb(100 / 3, 100, 100)
        assert(r == 0 and g == 255 and b == 0)
        for _, rgb in ipairs{{255, 0, 0}, {12, 200, 90}, {30, 60, 250}, {128, 128, 128}} do
          local h, s, v = utils.rgb_to_hsv(rgb[1], rgb[2], rgb[3])
          local r2, g2, b2 = utils.hsv_to_rgb(h, s, v)
          assert(r2 == rgb[1] and g2 == rgb[2] and b2 == rgb[3], "hsv round trip")
          h, s, l = utils.rgb_to_hsl(rgb[1], rgb[2], rgb[3])
          r2, g2, b2 = utils.hsl_to_rgb(h, s, l)
          assert(math.abs(r2 - rgb[1]) <= 1 and math.abs(g2 - rgb[2]) <= 1 and math.abs(b2 - rgb[3]) <= 1, "hsl")
        end
        r, g, b = utils.hsl_to_rgb(0, 100)  -- lightness 50 unless given
        assert(r == 255 and g == 0 and b == 0)
        assert(utils.serialize_int(0x1234, 2) == "\\18\\52" and utils.serialize_int(0x1234, 2, false, true) == "\\52\\18")
        assert(utils.serialize_int(-2, 2, true) == "\\255\\254")
        assert(utils.deserialize_int("\\255\\254", 2, true) == -2 and utils.deserialize_int("\\255\\254", 2) == 65534)
        assert(utils.deserialize_int(utils.serialize_int(123456, 4, false, true), 4, false, true) == 123456)
        assert(not pcall(utils.serialize_int, 256, 1), "does not fit")
        assert(not pcall(utils.deserialize_int, "\\1", 2), "too short")
    """)
