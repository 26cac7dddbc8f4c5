"""What JSON changes across a restart (spec/datastore.md section 3): reproduced, and warned about once."""

import pytest

from conftest import LuaHub


def test_number_keys_of_a_non_sequence_come_back_as_strings(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.sparse = {[1] = "a", [5] = "e"}
        ds.mixed = {"a", "b", x = 1}
        ds.list = {"a", "b", "c"}
        ds.neg = {[0] = "zero", [-1] = "minus"}
        ds.frac = {[1.5] = "x"}
        ds:save()
    """)
    assert len(lua_hub.warnings) == 4
    assert all("come back as string keys after a restart" in w for w in lua_hub.warnings)
    assert lua_hub.warnings[0].startswith("driver.lua:3: datastore.sparse:")
    lua_hub.restart()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.sparse[1] == nil and ds.sparse["1"] == "a" and ds.sparse["5"] == "e")
        assert(ds.mixed[1] == nil and ds.mixed["1"] == "a" and ds.mixed.x == 1)
        assert(ds.list[1] == "a" and ds.list[3] == "c", "a 1..n sequence keeps its integer keys")
        assert(ds.neg["0"] == "zero" and ds.neg["-1"] == "minus")
        assert(ds.frac["1.5"] == "x")
    """)


def test_nested_write_that_breaks_a_sequence_warns_once_per_path(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.list = {1, 2, 3}
        ds.list[5] = 5
        ds.list[7] = 7
        ds.other = {1}
        ds.other[3] = 3
        ds:save()
    """)
    assert len(lua_hub.warnings) == 2, lua_hub.warnings
    assert lua_hub.warnings[0].startswith("driver.lua:4: datastore.list:")
    assert lua_hub.warnings[1].startswith("driver.lua:7: datastore.other:")
    lua_hub.restart()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.list["1"] == 1 and ds.list["7"] == 7 and ds.list[1] == nil)
    """)


def test_a_sequence_that_loses_its_last_element_stays_a_sequence(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.stack = {1, 2, 3}
        ds.stack[3] = nil
        ds.stack[2] = nil
        ds:save()
    """)
    assert lua_hub.warnings == []
    lua_hub.restart()
    lua_hub.run('local ds = require("datastore").init(); assert(ds.stack[1] == 1 and ds.stack[2] == nil)')


def test_removing_a_middle_element_warns(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.list = {1, 2, 3}
        ds.list[2] = nil
    """)
    assert len(lua_hub.warnings) == 1 and "datastore.list" in lua_hub.warnings[0]


def test_number_keys_of_the_datastore_itself(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds[1] = "one"
        ds:save()
    """)
    assert "number keys of the datastore itself" in lua_hub.warnings[0]
    lua_hub.restart()
    lua_hub.run('local ds = require("datastore").init(); assert(ds[1] == nil and ds["1"] == "one")')


@pytest.mark.parametrize("expr", ["0/0", "math.huge", "-math.huge"])
def test_nan_and_infinity_come_back_as_nil(lua_hub, expr):
    lua_hub.run(f"""
        local ds = require("datastore").init()
        ds.v = {expr}
        ds.t = {{a = {expr}, b = 1}}
        ds.arr = {{1, {expr}, 3}}
        assert(ds.v ~= nil, "until a restart the value is what was written")
        ds:save()
    """)
    assert len(lua_hub.warnings) == 3
    assert all("comes back as nil after a restart" in w for w in lua_hub.warnings)
    lua_hub.restart()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.v == nil and ds.t.a == nil and ds.t.b == 1)
        assert(ds.arr[1] == 1 and ds.arr[2] == nil and ds.arr[3] == 3)
    """)


def test_warning_is_given_once_per_path(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        for i = 1, 5 do ds.v = 0/0 end
        for i = 1, 5 do ds.w = 0/0 end
    """)
    assert len(lua_hub.warnings) == 2


def test_empty_table_comes_back_as_empty_table(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.e = {}
        ds.n = {inner = {}}
        ds:save()
    """)
    lua_hub.restart()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(type(ds.e) == "table" and next(ds.e) == nil)
        assert(type(ds.n.inner) == "table")
        ds.e.x = 1
    """)
    assert lua_hub.warnings == []


def test_float_ness_kept_on_lua53(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hub = LuaHub(tmp_path, "5.3")
    hub.run("""
        local ds = require("datastore").init()
        ds.f = 1.0
        ds.i = 1
        ds.t = {2.0, 3}
        ds:save()
    """)
    hub.restart()
    hub.run("""
        local ds = require("datastore").init()
        assert(math.type(ds.f) == "float" and math.type(ds.i) == "integer")
        assert(math.type(ds.t[1]) == "float" and math.type(ds.t[2]) == "integer")
        assert(tostring(ds.f) == "1.0")
    """)
    hub.close()


def test_large_integers_survive_on_lua53(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hub = LuaHub(tmp_path, "5.3")
    hub.run("""
        local ds = require("datastore").init()
        ds.max = math.maxinteger
        ds.min = math.mininteger
        ds:save()
    """)
    hub.restart()
    hub.run("""
        local ds = require("datastore").init()
        assert(ds.max == math.maxinteger and ds.min == math.mininteger)
    """)
    hub.close()


def test_strict_mode_turns_warnings_into_errors(tmp_path, engine, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hub = LuaHub(tmp_path, engine, strict=True)
    for code in ["ds.v = 0/0", "ds.t = {[3] = 1}", "ds.l = {1, 2}; ds.l[4] = 4", "ds[1] = 1"]:
        message = hub.fails(f'local ds = require("datastore").init()\n{code}\n')
        assert "strict mode" in message and message.startswith("driver.lua:2: ")
    hub.run("""
        local ds = require("datastore").init()
        assert(ds.v == nil and ds.t == nil and ds[1] == nil)
        assert(ds.l[1] == 1 and ds.l[4] == nil, "the refused write left the list as it was")
    """)
    hub.close()
