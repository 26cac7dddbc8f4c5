"""Isolation (spec/datastore.md section 7, facts/lupa.md section 8): every escape fails with a Lua error."""

import json

import pytest

from hubrt.engine import LuaState, LuaFailure


@pytest.mark.parametrize("name", [
    "python", "io", "package", "dofile", "loadfile", "module", "getfenv", "setfenv",
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
    ("debug.getregistry()", "attempt to call"),
    ("debug.getupvalue(print, 1)", "attempt to call"),
    ("debug.getinfo(1, 'f').func()", "attempt to call"),
    ("local g = getfenv(0).python", "attempt to call"),
])
def test_escape_attempts_raise_lua_errors(lua_hub, code, expected):
    message = lua_hub.fails(code)
    assert expected in message, message


def test_debug_has_what_drivers_log_with_and_no_way_out(lua_hub):
    """The platform's own drivers log with debug.getinfo and debug.traceback; nothing in `debug`
    hands out a function, a hook, a local, an upvalue, a metatable or the registry."""
    assert sorted(k.decode() for k in lua_hub.run("local t = {} for k in pairs(debug) do t[#t + 1] = k end "
                                                  "return t")[0].values()) == ["getinfo", "traceback"]
    lua_hub.run(r"""
        local here = debug.getinfo(1, "Sl")
        assert(here.currentline == 2 and here.source:find("driver.lua$"), here.source)
        local function caller_line() local info = debug.getinfo(2, "l"); return info.currentline end
        assert(caller_line() == 5)
        local all = debug.getinfo(1)
        assert(all.currentline == 6 and all.func == nil and all.activelines == nil)
        assert(debug.getinfo(1, "fL").func == nil and debug.getinfo(1, "fL").activelines == nil)
        assert(debug.getinfo(tostring, "S").what == "C")
        local co = coroutine.create(function() coroutine.yield() end)
        coroutine.resume(co)
        assert(debug.getinfo(co, 1, "Sl").currentline == 10 and debug.getinfo(co, 1, "f").func == nil)
        local text = debug.traceback("boom")
        assert(text:find("^boom\nstack traceback:\n[^\n]*driver.lua:13: in main chunk"), text)
        assert(debug.traceback(co, "in co"):find("^in co\nstack traceback:"))
        local t = {}
        assert(debug.traceback(t) == t)
        local me = coroutine.running()
        if me then -- (Lua 5.3: the main thread; LuaJIT answers nil there)
          assert(debug.getinfo(me, 1, "l").currentline == 20)
          assert(debug.traceback(me, "mine"):find("^mine\nstack traceback:\n[^\n]*driver.lua:21:"))
        end
    """)


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


def _hsl_cases() -> str:
    """Lua rows {r, g, b, h, s, l, r2, g2, b2} computed with colorsys, the reference for the hsl helpers."""
    import colorsys

    rows = []
    for rgb in ((255, 0, 0), (12, 200, 90), (30, 60, 250), (0, 0, 255)):
        h, light, sat = colorsys.rgb_to_hls(*(c / 255 for c in rgb))
        hsl = [int(v * 100 + 0.5) for v in (h, sat, light)]
        back = colorsys.hls_to_rgb(hsl[0] / 100, hsl[2] / 100, hsl[1] / 100)
        rows.append("{" + ", ".join(map(str, [*rgb, *hsl, *(int(c * 255 + 0.5) for c in back)])) + "}")
    return ", ".join(rows)


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
        -- colours as the platform's library gives them: hsv in [0, 1], hsl in percent and 0-255
        local r, g, b = utils.hsv_to_rgb(0, 1)
        assert(r == 1 and g == 0 and b == 0, r .. " " .. g .. " " .. b)
        r, g, b = utils.hsv_to_rgb(1 / 3, 1)
        assert(r == 0 and g == 1 and b == 0)
        r, g, b = utils.hsv_to_rgb(0.7, 0)
        assert(r == 1 and g == 1 and b == 1, "no saturation: white")
        for _, rgb in ipairs{{1, 0, 0}, {0.05, 1, 0.35}, {0.1, 0.25, 1}, {1, 1, 1}} do
          local h, s, v = utils.rgb_to_hsv(rgb[1], rgb[2], rgb[3])
          assert(v == 1)
          local r2, g2, b2 = utils.hsv_to_rgb(h, s)
          assert(math.abs(r2 - rgb[1]) < 1e-9 and math.abs(g2 - rgb[2]) < 1e-9 and math.abs(b2 - rgb[3]) < 1e-9,
                 "hsv round trip")
        end
        -- {rgb, its rounded hsl, that hsl's rounded rgb}: the figures Python's colorsys gives
        for _, case in ipairs{HSL_CASES} do
          local h, s, l = utils.rgb_to_hsl(case[1], case[2], case[3])
          assert(h == case[4] and s == case[5] and l == case[6], "rgb_to_hsl " .. h .. " " .. s .. " " .. l)
          local r2, g2, b2 = utils.hsl_to_rgb(h, s, l)
          assert(r2 == case[7] and g2 == case[8] and b2 == case[9], "hsl_to_rgb " .. r2 .. " " .. g2 .. " " .. b2)
        end
        r, g, b = utils.hsl_to_rgb(0, 100)  -- lightness 50 unless given
        assert(r == 255 and g == 0 and b == 0)
        assert(select(3, utils.rgb_to_hsl(255, 0, 0)) == 50)
        r, g, b = utils.hsl_to_rgb(20, 0, 10)
        assert(r == 255 and g == 255 and b == 255, "no saturation: white, whatever the lightness (as the library)")
        -- CIE xy through sRGB: its red primary is at x 0.64, y 0.33
        local x, y, Y = utils.safe_hsv_to_xy(0, 100)
        assert(math.abs(x - 0.64 * 65536) < 3 and math.abs(y - 0.33 * 65536) < 3 and near(Y, 0.2126729), x .. " " .. y)
        local h, s, v = utils.safe_xy_to_hsv(x, y, Y)
        assert((h == 0 or h == 100) and s == 100 and v == 100, h .. " " .. s .. " " .. v)
        h, s = utils.safe_xy_to_hsv(utils.safe_hsv_to_xy(60, 80))
        assert(math.abs(h - 60) <= 1 and math.abs(s - 80) <= 2, h .. " " .. s)
        x, y = utils.safe_hsv_to_xy(nil, nil) -- missing: 0 (white, at D65)
        assert(math.abs(x - 0.3127 * 65536) < 10 and math.abs(y - 0.3290 * 65536) < 10)
        -- bits, most significant first
        assert(table.concat(utils.bitify("\\5\\128"), "") == "0000010110000000")
        assert(utils.bit_list_to_int({1, 0, 1}) == 5 and utils.bit_list_to_byte_str(utils.bitify("ab")) == "ab")
        assert(not pcall(utils.bit_list_to_int, {1, 2}) and not pcall(utils.bit_list_to_byte_str, {1}))
        -- names, tables, orders
        assert(utils.camel_case("hello_world") == "helloWorld" and utils.pascal_case("hello world") == "HelloWorld")
        assert(utils.snake_case("helloWorld") == "hello_world" and utils.snake_case("HTTPServer") == "http_server")
        assert(utils.screaming_snake_case("fooBar") == "FOO_BAR")
        local merged = utils.merge({a = 1, b = {c = 1}}, {a = 2, b = {d = 2}, e = 3})
        assert(merged.a == 1 and merged.b.c == 1 and merged.b.d == 2 and merged.e == 3, "merge fills in")
        local updated = utils.update({a = 1, b = {c = 1}}, {a = 2, b = {c = 3}, e = 5})
        assert(updated.a == 2 and updated.b.c == 3 and updated.e == nil, "update overwrites")
        local seen = {}
        for k, v in utils.fvalues({x = 3, y = 1, z = 2}) do seen[#seen + 1] = k .. v end
        for k in utils.fkeys({b = 1, a = 2}) do seen[#seen + 1] = k end
        assert(table.concat(seen, ",") == "y1,z2,x3,a,b", table.concat(seen, ","))
        assert(table.concat(utils.rsort({2, 3, 1}), "") == "321")
        local backoff = utils.backoff_builder(10, 1)
        local waits = {}
        for i = 1, 6 do waits[i] = backoff() end
        assert(waits[1] == 0 and waits[2] == 1 and waits[3] == 3 and waits[4] == 7 and waits[5] == 10
               and waits[6] == 10, table.concat(waits, ","))
        assert(utils.get_print_safe_string("ab\\1") == [[\\x61\\x62\\x01]] and utils.get_print_safe_string("ok") == "ok")
        assert(utils.mole_per_cubic_meter_to_ppm(2) == 48900)
        local ok, err = pcall(utils.verify_type, 1, "string", "name")
        assert(not ok and err:find("name should be of type string but was number"), err)
        assert(utils.log_func_wrapper(function(a, b) return a + b end, "add")(2, 3) == 5)
        assert(utils.serialize_int(0x1234, 2) == "\\18\\52" and utils.serialize_int(0x1234, 2, false, true) == "\\52\\18")
        assert(utils.serialize_int(-2, 2, true) == "\\255\\254")
        assert(utils.deserialize_int("\\255\\254", 2, true) == -2 and utils.deserialize_int("\\255\\254", 2) == 65534)
        assert(utils.deserialize_int(utils.serialize_int(123456, 4, false, true), 4, false, true) == 123456)
        assert(not pcall(utils.serialize_int, 256, 1), "does not fit")
        assert(not pcall(utils.deserialize_int, "\\1", 2), "too short")
    """.replace("HSL_CASES", _hsl_cases()))


def test_tables_kept_in_the_datastore_reach_python_whole(lua_hub):
    """A datastore table is a proxy over hidden contents: what Python reads of it (st.json, event
    values, device metadata) is its contents, as driver code sees them (st.json.encode gave {})."""
    state, presets, ok, err = lua_hub.run("""
        local ds = require("datastore").init()
        ds.state = {volume = 30, presets = {"a", "b"}}
        local json = require "st.json"
        local loop = {}
        loop.self = loop
        local ok, err = pcall(json.encode, loop)
        assert(json({use_native = false}) == json, "the module is also called to configure it")
        return json.encode(ds.state), json.encode(ds.state.presets), ok, err
        """)
    assert json.loads(state) == {"volume": 30, "presets": ["a", "b"]} and json.loads(presets) == ["a", "b"]
    assert (ok, err) == (False, b"driver.lua:7: st.json.encode: a table that contains itself")
