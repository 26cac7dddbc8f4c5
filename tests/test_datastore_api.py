"""The datastore's Lua API (spec/datastore.md section 2), exercised from Lua on both engines."""

import re

import pytest

FUNC_MSG = re.compile(
    r"Data store keys and values must be JSON encodable: function: (0x)?[0-9a-f]+ is of unsupported type function")


def test_init_returns_the_one_datastore(lua_hub):
    lua_hub.run("""
        local ds = require "datastore"
        assert(ds.init() == ds.init())
        assert(require("datastore") == ds)
    """)


def test_reads_writes_and_deletes_at_any_depth(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.a = {b = {c = {d = 1}}}
        ds.a.b.c.e = "two"
        ds.a.b.x = {1, 2, 3}
        assert(ds.a.b.c.d == 1 and ds.a.b.c.e == "two" and ds.a.b.x[3] == 3)
        ds.a.b.c.d = nil
        assert(ds.a.b.c.d == nil)
        ds.s = "str"; ds.n = 42; ds.f = 1.5; ds.t = true; ds.no = false
        ds:save()
    """)
    lua_hub.restart()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.a.b.c.d == nil, "deleted key came back")
        assert(ds.a.b.c.e == "two")
        assert(ds.a.b.x[1] == 1 and ds.a.b.x[2] == 2 and ds.a.b.x[3] == 3)
        assert(ds.s == "str" and ds.n == 42 and ds.f == 1.5 and ds.t == true and ds.no == false)
    """)


def test_pairs_and_ipairs_on_top_level_and_nested_tables(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.x = 1; ds.y = 2
        ds.list = {"a", "b", "c"}
        ds.map = {k1 = 1, k2 = 2}
        local top = {}
        for k, v in pairs(ds) do top[k] = v end
        assert(top.x == 1 and top.y == 2 and top.list == ds.list and top.map == ds.map)
        local n = 0
        for k in pairs(top) do n = n + 1 end
        assert(n == 4, "pairs(ds) saw " .. n .. " keys (methods must not show)")
        local seen = {}
        for i, v in ipairs(ds.list) do seen[#seen + 1] = i .. "=" .. v end
        assert(table.concat(seen, ",") == "1=a,2=b,3=c", table.concat(seen, ","))
        local sum = 0
        for k, v in pairs(ds.map) do sum = sum + v end
        assert(sum == 3)
    """)


def test_is_dirty_and_save(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds:is_dirty() == false)
        ds.a = {b = 1}
        assert(ds:is_dirty() == true)
        ds:save()
        assert(ds:is_dirty() == false)
        ds.a.b = 2
        assert(ds:is_dirty() == true, "a nested write makes the datastore dirty")
        ds:save()
        ds.a = nil
        assert(ds:is_dirty() == true)
    """)


def test_commit_returns_true_and_is_durable(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.k = "v"
        local ok, err = ds:commit()
        assert(ok == true and err == nil)
    """)
    lua_hub.lose_power()
    lua_hub.run('assert(require("datastore").init().k == "v")')


@pytest.mark.parametrize("name", ["init", "save", "commit", "is_dirty", "load", "_force_save"])
def test_reserved_method_names(lua_hub, name):
    message = lua_hub.fails(f"""
        local ds = require("datastore").init()
        ds.{name} = 1
    """)
    assert message == f"driver.lua:3: Key: {name} refers to a protected method, do not overwrite."


def test_assigned_table_becomes_a_datastore_view(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        local t = {}
        ds.a = t
        assert(ds.a == t, "the very table object is kept")
        t.b = 1
        t.c = {d = 2}
        local inner = t.c
        inner.e = 3
        assert(ds.a.b == 1 and ds.a.c.e == 3)
        local ok, err = pcall(function() t.bad = print end)
        assert(not ok and err:find("unsupported type function"), "writes through t are validated")
        ds:save()
    """)
    lua_hub.restart()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.a.b == 1 and ds.a.c.d == 2 and ds.a.c.e == 3)
    """)


def test_assigning_a_datastore_table_elsewhere_stores_a_copy(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.a = {x = {y = 1}}
        ds.b = ds.a
        ds.b.x.y = 2
        assert(ds.a.x.y == 1 and ds.b.x.y == 2)
        ds:save()
    """)
    lua_hub.restart()
    lua_hub.run('local ds = require("datastore").init(); assert(ds.a.x.y == 1 and ds.b.x.y == 2)')


def test_function_rejected_with_exact_message_and_driver_position(lua_hub):
    message = lua_hub.fails("""
        local ds = require("datastore").init()
        local function f() end
        ds.f = f
    """)
    assert message.startswith("driver.lua:4: ")
    assert FUNC_MSG.search(message), message
    assert "[hubrt]" not in message


def test_nested_rejection_names_the_path_and_line(lua_hub):
    message = lua_hub.fails("""
        local ds = require("datastore").init()
        ds.cache = {}
        local function put()
          ds.cache["10.0.0.2"] = {handler = function() end}
        end
        put()
    """)
    assert message.startswith("driver.lua:5: ")
    assert FUNC_MSG.search(message)
    assert 'datastore.cache["10.0.0.2"].handler' in message


@pytest.mark.parametrize("value, lua_type", [
    ("coroutine.create(function() end)", "thread"),
    ("coroutine.wrap(function() end)", "function"),
    ("print", "function"),
])
def test_unsupported_types(lua_hub, value, lua_type):
    message = lua_hub.fails(f"""
        local ds = require("datastore").init()
        local v = {value}
        ds.v = v
    """)
    assert re.search(rf"Data store keys and values must be JSON encodable: {lua_type}: \S+ is of unsupported "
                     rf"type {lua_type}", message), message


def test_userdata_rejected(lua_hub):
    lua_hub.lua.env[b"some_userdata"] = object()  # a host object is userdata to Lua
    message = lua_hub.fails("""
        local ds = require("datastore").init()
        ds.u = {inner = some_userdata}
    """)
    assert "is of unsupported type userdata" in message and "datastore.u.inner" in message


def test_metatable_rejected(lua_hub):
    message = lua_hub.fails("""
        local ds = require("datastore").init()
        ds.m = {child = setmetatable({}, {__index = function() return 1 end})}
    """)
    assert "datastore table values should be simple and not include metatable functionality" in message
    assert message.startswith("driver.lua:3: ")


def test_cycle_rejected_without_stack_overflow(lua_hub):
    message = lua_hub.fails("""
        local ds = require("datastore").init()
        local t = {a = {}}
        t.a.back = t
        ds.t = t
    """)
    assert "cycle" in message and "datastore.t.a.back" in message


def test_shared_subtable_in_one_value_rejected(lua_hub):
    message = lua_hub.fails("""
        local ds = require("datastore").init()
        local shared = {}
        ds.t = {a = shared, b = shared}
    """)
    assert "also appears at" in message


def test_boolean_keys_rejected(lua_hub):
    message = lua_hub.fails("""
        local ds = require("datastore").init()
        ds.t = {[true] = 1}
    """)
    assert "Data store keys and values must be JSON encodable: true is of unsupported type boolean" in message
    message = lua_hub.fails('require("datastore").init()[false] = 1')
    assert "false is of unsupported type boolean" in message


@pytest.mark.parametrize("code", [
    'ds.bin = "\\255\\254"',
    'ds.t = {nested = "ok\\192"}',
    'ds["\\200key"] = 1',
    'ds.t = {["k\\255"] = 1}',
])
def test_non_utf8_strings_rejected_with_base64_hint(lua_hub, code):
    message = lua_hub.fails(f'local ds = require("datastore").init()\n{code}\n')
    assert "not valid UTF-8" in message and "base64" in message


def test_number_key_clash_rejected(lua_hub):
    message = lua_hub.fails('local ds = require("datastore").init()\nds.t = {[1] = "a", ["1"] = "b"}\n')
    assert 'would both be saved as "1"' in message
    message = lua_hub.fails("""
        local ds = require("datastore").init()
        ds.t = {x = 1}
        ds.t[2] = "a"
        ds.t["2"] = "b"
    """)
    assert 'would both be saved as "2"' in message


def test_rejected_write_leaves_the_datastore_unchanged(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.keep = {a = 1}
        ds:save()
        local t = {ok = 1, bad = {deeper = print}}
        assert(not pcall(function() ds.keep = t end))
        assert(not pcall(function() ds.keep.a = {x = print} end))
        assert(not pcall(function() ds.other = {1, 2, coroutine.create(print)} end))
        assert(ds.keep.a == 1 and ds.other == nil)
        assert(ds:is_dirty() == false, "a rejected write does not dirty the datastore")
        assert(getmetatable(t) == nil and t.ok == 1, "the rejected table is left as it was")
        local n = 0
        for _ in pairs(ds) do n = n + 1 end
        assert(n == 1)
    """)
    lua_hub.restart()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.keep.a == 1 and ds.other == nil)
    """)


def test_seed_layout_for_device_data(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds["__device-1"] = {level = 50}
        ds:save()
    """)
    lua_hub.restart()
    lua_hub.run('assert(require("datastore").init()["__device-1"].level == 50)')


def test_load_discards_unsaved_changes(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.a = 1
        ds:save()
        ds.a = 2
        ds.b = 3
        assert(ds:load() == ds)
        assert(ds.a == 1 and ds.b == nil and ds:is_dirty() == false)
    """)


def test_force_save_writes_everything(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.a = {1, 2}
        ds:save()
        ds:_force_save()
        assert(ds:is_dirty() == false)
    """)
    lua_hub.restart()
    lua_hub.run('assert(require("datastore").init().a[2] == 2)')


def test_length_of_datastore_tables_follows_the_hub(lua_hub):
    # On the hub, datastore tables are raw-empty proxies without __len: # is 0.
    # ipairs works; table.insert does not see the elements.
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.list = {1, 2, 3}
        assert(rawlen(ds.list) == 0)
        local n = 0
        for _ in ipairs(ds.list) do n = n + 1 end
        assert(n == 3)
    """)


def test_no_iterator_hands_out_a_views_backing_table(lua_hub):
    """pairs() must not give driver code the hidden backing table: writes to it would skip validation."""
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.a = {x = 1}
        ds.b = {1, 2}
        for _, view in ipairs{ds, ds.a, ds.b} do
          for _, iter in ipairs{pairs, ipairs} do
            local results = {iter(view)}
            for i = 2, #results do
              assert(type(results[i]) ~= "table" or results[i] == view, "an iterator gave out a table")
            end
          end
        end
        local seen = {}
        for k, v in pairs(ds.a) do seen[k] = v end
        assert(seen.x == 1, "pairs still iterates")
    """)


@pytest.mark.parametrize("levels", [101, 300, 3000])
def test_tables_too_deep_to_save_are_refused_at_the_assignment(lua_hub, levels):
    message = lua_hub.fails(f"""
        local ds = require("datastore").init()
        local t = {{}}
        local cur = t
        for i = 1, {levels} do cur.n = {{}}; cur = cur.n end
        ds.ok = 1
        ds.deep = t
    """)
    assert message.startswith("driver.lua:7: datastore.deep.n") and "nested more than 100 levels" in message, message
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.deep == nil, "the refused write changed nothing")
        local t = {}
        local cur = t
        for i = 1, 99 do cur.n = {}; cur = cur.n end
        ds.deep = t
        assert(ds:commit())
    """)
    lua_hub.restart()
    lua_hub.run("""
        local ds = require("datastore").init()
        local cur, n = ds.deep, 1
        while cur.n do cur = cur.n; n = n + 1 end
        assert(n == 100 and ds.ok == 1, n)
    """)


@pytest.mark.parametrize("key, saved_as", [("0.1 + 0.2", "0.3"), ("1 + 2^-52", "1"), ("2^70 + 2^20", None)])
def test_number_keys_whose_saved_text_is_another_number_are_refused(lua_hub, key, saved_as):
    message = lua_hub.fails(f"""
        local ds = require("datastore").init()
        ds.t = {{}}
        ds.t[{key}] = "x"
    """)
    assert message.startswith("driver.lua:4: datastore.t: the key ") and "reads back as another number" in message
    if saved_as:
        assert f'would be saved as "{saved_as}"' in message
    message = lua_hub.fails(f"""
        local ds = require("datastore").init()
        ds.u = {{[{key}] = "x"}}
    """)
    assert message.startswith("driver.lua:3: datastore.u: the key "), message


def test_integer_valued_keys_are_the_integers_they_equal(lua_hub):
    """Lua makes t[1.0] the key 1, and 2^60 (a float on 5.3) the integer key 2^60."""
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.list = {}
        ds.list[1.0] = "a"
        ds.list[2] = "b"
        ds[2^60] = "big"
        ds[2^60 + 256] = "bigger"
        ds:save()
    """)
    lua_hub.restart()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.list[1] == "a" and ds.list[2] == "b", "the list is saved as a list")
        assert(ds["1152921504606846976"] == "big" and ds["1152921504606847232"] == "bigger")
        local n = 0
        for _ in pairs(ds) do n = n + 1 end
        assert(n == 3, "no phantom keys: " .. n)
    """)


def test_a_refused_nan_key_changes_nothing_and_names_the_drivers_line(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.t = {}
        local ok, err = pcall(function() ds.t[0/0] = "x" end)
        assert(not ok and err:find("^driver.lua:4: a key of datastore.t is NaN"), err)
        ds.t[1] = "a"
        ds.t[2] = "b"
        ds:save()
    """)
    lua_hub.restart()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.t[1] == "a" and ds.t[2] == "b", "still a list")
    """)
