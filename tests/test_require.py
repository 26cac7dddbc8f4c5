"""`require` finds the driver's own modules (and hubrt's), with errors naming the driver's files."""

import os
import time


def test_driver_modules_are_found_next_to_the_entry_point(lua_hub):
    (lua_hub.dir / "helpers").mkdir()
    (lua_hub.dir / "helpers" / "math2.lua").write_text("return {double = function(x) return 2 * x end}\n")
    (lua_hub.dir / "store_it.lua").write_text(
        "return function(ds, v)\n  ds.v = v\nend\n")
    lua_hub.run("""
        local m = require "helpers.math2"
        assert(m.double(21) == 42)
        assert(require("helpers.math2") == m, "modules load once")
    """)
    message = lua_hub.fails('require("store_it")(require("datastore").init(), print)')
    assert message.startswith("store_it.lua:2: "), message


def test_missing_module_lists_where_it_looked(lua_hub):
    message = lua_hub.fails('require "no.such.module"')
    assert "module 'no.such.module' not found" in message and "no/such/module.lua" in message


def test_a_radio_library_of_the_hub_is_named_as_one_hubrt_does_not_provide(lua_hub):
    """Most public drivers need the hub's Zigbee, Z-Wave or Matter library: their authors are told
    what is missing, not only where hubrt looked."""
    for module, radio in (("st.zigbee", "Zigbee"), ("st.zwave.CommandClass", "Z-Wave"),
                          ("st.matter.clusters", "Matter")):
        message = lua_hub.fails(f'require "{module}"')
        assert f"module '{module}' not found (the hub's {radio} library, which hubrt does not provide yet" \
            in message, message
    assert "does not provide" not in lua_hub.fails('require "st.zigbeex"')


def test_syntax_error_in_a_module_names_its_file(lua_hub):
    (lua_hub.dir / "broken.lua").write_text("local x = = 1\n")
    message = lua_hub.fails('require "broken"')
    assert "broken.lua:1:" in message


def test_a_link_out_of_the_drivers_folder_is_not_followed(lua_hub, tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-outside.lua"
    outside.write_text('return "secret"\n')
    (lua_hub.dir / "evil.lua").symlink_to(outside)
    message = lua_hub.fails('require "evil"')
    assert message.startswith("driver.lua:1: module 'evil' not found: src/evil.lua is a link to "), message
    assert "outside the driver's src/" in message


def test_a_module_name_with_a_control_byte_is_refused_at_the_drivers_line(lua_hub):
    message = lua_hub.fails('require("st\\0json")')
    assert message == "driver.lua:1: module 'st\\x00json' not found: not a valid module name", message


def test_a_drivers_own_copy_of_a_library_comes_first(lua_hub):
    """As on the hub: a driver that bundles its own log.lua (or st/utils.lua) gets its own."""
    (lua_hub.dir / "st").mkdir()
    (lua_hub.dir / "log.lua").write_text('return {mine = true}\n')
    (lua_hub.dir / "st" / "utils.lua").write_text('return {round = function() return "mine" end}\n')
    lua_hub.run("""
        assert(require("log").mine == true, "the driver's log.lua")
        assert(require("st.utils").round(1.5) == "mine", "the driver's st/utils.lua")
        assert(require("st.json").encode({1}) == "[1]", "what the driver does not bundle comes from hubrt")
    """)


def test_a_module_added_to_src_is_found_by_the_next_driver_state(lua_hub):
    """A listing of src/ is shared by the states that follow (two per Lua test), and a change to
    the folder is seen: one that moved its time stamp, and one made so soon after the listing that
    the time stamp did not move (faked here by putting it back)."""
    src = lua_hub.dir
    lua_hub.run("local x = 1")  # (driver.lua is written into src/ at the first run)
    lua_hub.crash_driver()
    old = time.time() - 60
    os.utime(src, (old, old))
    lua_hub.run('assert(not pcall(require, "later"))')  # listed, and kept: the folder is old
    (src / "later.lua").write_text('return "here"\n')
    lua_hub.crash_driver()
    lua_hub.run('assert(require("later") == "here")')

    stamp = src.stat().st_mtime_ns  # just changed: a listing now is not kept
    lua_hub.crash_driver()
    lua_hub.run('assert(not pcall(require, "sooner"))')
    (src / "sooner.lua").write_text('return "also"\n')
    os.utime(src, ns=(stamp, stamp))
    lua_hub.crash_driver()
    lua_hub.run('assert(require("sooner") == "also")')
