"""The three kinds of stop (spec/datastore.md section 4): what survives each."""

import signal
import sqlite3
import subprocess
import sys
import time

from conftest import ROOT, hubrt

WRITE = """
    local ds = require("datastore").init()
    ds.saved = {n = 1}
    ds:save()
    ds.unsaved = true
    ds.saved.n = 2
"""


def test_driver_crash_keeps_what_was_saved(lua_hub):
    lua_hub.run(WRITE)
    lua_hub.crash_driver()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.saved.n == 1, "saved value survives a driver crash")
        assert(ds.unsaved == nil, "unsaved change is lost in a driver crash")
    """)


def test_saved_but_unflushed_data_survives_a_driver_crash(lua_hub):
    lua_hub.run(WRITE)
    assert lua_hub.hub.store.pending(), "the save is in the hub's memory, not yet on disk"
    lua_hub.crash_driver()
    lua_hub.run('assert(require("datastore").init().saved.n == 1)')


def test_graceful_restart_loses_nothing(lua_hub):
    lua_hub.run(WRITE)
    lua_hub.restart()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.saved.n == 2 and ds.unsaved == true)
    """)


def test_power_loss_keeps_only_what_was_flushed(lua_hub):
    lua_hub.run("""
        local ds = require("datastore").init()
        ds.committed = 1
        assert(ds:commit())
        ds.committed = 2
        ds.saved_only = true
        ds:save()
    """)
    lua_hub.lose_power()
    lua_hub.run("""
        local ds = require("datastore").init()
        assert(ds.committed == 1 and ds.saved_only == nil)
    """)


def test_uncaught_error_in_hubrt_lua_is_a_driver_crash(tmp_path, engine):
    script = tmp_path / "crashy.lua"
    script.write_text(WRITE + '    error("boom")\n')
    state = tmp_path / "state"
    result = hubrt("lua", str(script), "--lua", engine, "--state", str(state), cwd=tmp_path)
    assert result.returncode == 1
    assert "crashy.lua:7: boom" in result.stderr
    assert "stack traceback" in result.stderr and "[hubrt]/host" not in result.stderr
    shown = hubrt("store", "show", "crashy", "--state", str(state), cwd=tmp_path, check=True).stdout
    assert '"n": 1' in shown and "unsaved" not in shown


def test_normal_end_of_hubrt_lua_is_a_graceful_stop(tmp_path, engine):
    script = tmp_path / "fine.lua"
    script.write_text(WRITE)
    state = tmp_path / "state"
    hubrt("lua", str(script), "--lua", engine, "--state", str(state), cwd=tmp_path, check=True)
    shown = hubrt("store", "show", "fine", "--state", str(state), cwd=tmp_path, check=True).stdout
    assert '"n": 2' in shown and '"unsaved": true' in shown


def test_os_exit_is_a_driver_crash(tmp_path, engine):
    script = tmp_path / "quits.lua"
    script.write_text(WRITE + "    pcall(os.exit, 3)\n    error('not reached')\n")
    result = hubrt("lua", str(script), "--lua", engine, "--state", str(tmp_path / "s"), cwd=tmp_path)
    assert result.returncode == 1 and "os.exit(3)" in result.stderr and "not reached" not in result.stderr


def test_sigkill_keeps_exactly_the_committed_snapshot(tmp_path, engine):
    """Power loss for real: the hubrt process is killed while it runs."""
    script = tmp_path / "busy.lua"
    script.write_text("""
        local ds = require("datastore").init()
        ds.committed = {value = "durable"}
        assert(ds:commit())
        ds.committed.value = "saved, not flushed"
        ds.extra = 1
        ds:save()
        print("ready")
        while true do ds.counter = (ds.counter or 0) + 1 end
    """)
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "hubrt", "lua", str(script), "--lua", engine,
                             "--state", str(state)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    db = sqlite3.connect(state / "hub.db")
    rows = dict(db.execute("SELECT key, value FROM datastore WHERE driver = 'busy'").fetchall())
    db.close()
    assert rows == {"committed": '{"value":"durable"}'}
    shown = hubrt("store", "show", "busy", "--state", str(state), check=True).stdout
    assert "durable" in shown
