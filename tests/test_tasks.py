"""Drivers as cosock tasks, seen from the hub (the semantics themselves are Lua tests:
tests/fixtures/cosock-tour): a runaway task is stopped at --handler-timeout and named, a task
that fails is reported at its line, os.exit in a task is a driver crash, and a device whose
handler was stopped goes on with its next event."""

import re

import pytest

from conftest import make_driver
from hubrt.engine import LuaState

TASKS = """
local Driver = require "st.driver"
local capabilities = require "st.capabilities"
local cosock = require "cosock"
local socket = require "cosock.socket"
cosock.spawn(function() while true do end end, "spinner")
cosock.spawn(function()
  socket.sleep(1)
  error("the sensor went away")
end, "poller")
Driver("tasks", {capability_handlers = {[capabilities.switch.ID] = {
  on = function(driver) driver.datastore.ons = (driver.datastore.ons or 0) + 1 end,
  off = function(driver, device)
    if driver.datastore.stuck == nil then
      driver.datastore.stuck = true
      while true do end
    end
    driver.datastore.offs = (driver.datastore.offs or 0) + 1
  end,
}}}):run()
"""


def runaway(state):
    """An endless loop in driver code (compiled as the state compiles a driver's files)."""
    chunk, _ = state.compile(b"return function() while true do end end", b"=runaway.lua")
    return state.call(chunk)[0]


def errors(hub):
    return [r.text for r in hub.logs if r.level == "error"]


def test_a_runaway_task_is_stopped_and_named(new_hub, tmp_path):
    hub = new_hub(handler_timeout=0.3)
    hub.install(make_driver(tmp_path / "tasks", TASKS, key="tasks"))
    stopped = [e for e in errors(hub) if "spinner" in e]
    assert len(stopped) == 1, errors(hub)
    assert "error in cosock task 'spinner'" in stopped[0] and "init.lua:6:" in stopped[0] \
        and "ran for more than 0.3 s and was stopped" in stopped[0], stopped[0]
    hub.add_device("tasks", "switch", label="S")
    hub.command("S", "switch", "on")
    assert hub.store.load("tasks")["ons"] == 1, "the driver goes on"


def test_a_failing_task_is_reported_at_its_line(new_hub, tmp_path):
    hub = new_hub(handler_timeout=0.3)
    hub.install(make_driver(tmp_path / "tasks", TASKS, key="tasks"))
    assert not [e for e in errors(hub) if "poller" in e], "it sleeps first"
    hub.advance(1)
    failed = [e for e in errors(hub) if "poller" in e]
    assert len(failed) == 1 and "init.lua:9: the sensor went away" in failed[0], errors(hub)
    assert "stack traceback" in failed[0]


def test_a_device_goes_on_after_its_handler_was_stopped(new_hub, tmp_path):
    hub = new_hub(handler_timeout=0.3)
    hub.install(make_driver(tmp_path / "tasks", TASKS, key="tasks"))
    hub.add_device("tasks", "switch", label="S")
    hub.command("S", "switch", "off", wait=False)  # stopped at the time limit
    hub.command("S", "switch", "off")  # queued on the same device thread: runs after it
    stopped = [e for e in errors(hub) if "capability switch.off for S" in e]
    assert len(stopped) == 1 and "ran for more than 0.3 s" in stopped[0], errors(hub)
    assert hub.store.load("tasks")["offs"] == 1


def test_os_exit_in_a_task_is_a_driver_crash(new_hub, tmp_path):
    hub = new_hub()
    hub.install(make_driver(tmp_path / "exit", """
        local Driver = require "st.driver"
        local cosock = require "cosock"
        local capabilities = require "st.capabilities"
        Driver("exit", {capability_handlers = {[capabilities.switch.ID] = {
          on = function(driver)
            driver.datastore.before = (driver.datastore.before or 0) + 1
            cosock.spawn(function() os.exit(3) end, "quitter")
          end,
        }}}):run()
    """, key="exit"))
    hub.add_device("exit", "switch", label="E")
    hub.command("E", "switch", "on")
    texts = [r.text for r in hub.logs]
    assert any("driver crash" in t and "os.exit(3)" in t for t in texts), texts
    assert any("restarting the driver after a crash" in t for t in texts), texts


def test_os_exit_in_the_shutdown_handler_is_a_normal_end(new_hub, tmp_path):
    """Drivers end themselves with os.exit in their shutdown handler on a hub: no error, and what
    they wrote before it is saved."""
    hub = new_hub()
    hub.install(make_driver(tmp_path / "bye", """
        local Driver = require "st.driver"
        Driver("bye", {driver_lifecycle = function(driver, event)
          if event == "shutdown" then
            driver.datastore.said = "bye"
            os.exit(0)
          end
        end}):run()
    """, key="bye"))
    hub.restart("graceful")
    assert [r.text for r in hub.logs if r.level == "error"] == []
    assert hub.store.load("bye")["said"] == "bye"


def test_a_runaway_in_a_worker_forked_from_a_process_that_runs_lua_is_stopped(new_hub, tmp_path, engine):
    """Under LuaJIT a worker's thread watches each turn from outside (hubrt/watchdog.py). A hub
    process that watches Lua states of its own forks its workers with none of its threads: each
    worker watches its own handlers, which are still stopped at their line (not killed by the hub
    later)."""
    own = LuaState(engine, interruptible=True, watched=True)
    assert own.helpers.dispatch(0.3, b"a runaway of the hub's own", runaway(own))[2].endswith(
        b"ran for more than 0.3 s and was stopped")
    hub = new_hub(handler_timeout=0.3)
    hub.install(make_driver(tmp_path / "tasks", TASKS, key="tasks"))
    hub.add_device("tasks", "switch", label="S")
    hub.command("S", "switch", "off")
    stopped = [e for e in errors(hub) if "capability switch.off for S" in e]
    assert len(stopped) == 1 and "init.lua:16:" in stopped[0] and "ran for more than 0.3 s" in stopped[0], \
        errors(hub)
    assert not [e for e in errors(hub) if "driver crash" in e], errors(hub)


@pytest.mark.parametrize("where, line", [
    ("in init.lua", "init.lua:6:"),
    ("in a module of src/", "spin.lua:2:"),
    ("in a chunk the driver loads", "[string \"spin\"]:1:"),
    ("in a coroutine", "spin.lua:2:"),
])
def test_a_runaway_in_any_driver_code_is_stopped_at_its_line_by_a_worker(new_hub, tmp_path, where, line):
    """A worker's LuaJIT compiles hubrt's own modules to machine code but never driver code, whose
    loops must stay where the hook that stops them reaches: a loop in a driver's own file, a module
    of its src/, a chunk it makes with `load`, or a coroutine, each run hot enough to be compiled."""
    spin = {
        "in init.lua": "function() local n = 0 while true do n = n + 1 end end",
        "in a module of src/": "require('spin').forever",
        "in a chunk the driver loads": "load('local n = 0 while true do n = n + 1 end', '=[string \"spin\"]')",
        "in a coroutine": "coroutine.wrap(require('spin').forever)",
    }[where]
    hub = new_hub(handler_timeout=0.3)
    hub.install(make_driver(tmp_path / "spin", f"""
        local Driver = require "st.driver"
        local capabilities = require "st.capabilities"
        Driver("spin", {{capability_handlers = {{[capabilities.switch.ID] = {{
          on = function(driver)
            local spin = {spin}
            spin()
          end,
          off = function(driver) driver.datastore.offs = (driver.datastore.offs or 0) + 1 end,
        }}}}}}):run()
    """, key="spin", files={
        "src/spin.lua": "local M = {}\nfunction M.forever() local n = 0 while true do n = n + 1 end end\nreturn M\n"}))
    hub.add_device("spin", "switch", label="S")
    hub.command("S", "switch", "on")
    hub.command("S", "switch", "off")
    stopped = [e for e in errors(hub) if "capability switch.on for S" in e]
    assert len(stopped) == 1 and line in stopped[0] and "ran for more than 0.3 s and was stopped" in stopped[0], \
        errors(hub)
    assert not [e for e in errors(hub) if "driver crash" in e or "killed" in e], errors(hub)
    assert hub.store.load("spin")["offs"] == 1, "the driver goes on"


def test_runaways_that_keep_calling_compiled_library_code_are_each_stopped(new_hub, tmp_path):
    """The watchdog installs its hook from another thread while hubrt's library code may be being
    compiled (a hook change aborts the trace being recorded): each runaway is stopped at its line and
    the worker never crashes."""
    hub = new_hub(handler_timeout=0.05)
    hub.install(make_driver(tmp_path / "spin", """
        local Driver = require "st.driver"
        local capabilities = require "st.capabilities"
        local utils = require "st.utils"
        Driver("spin", {capability_handlers = {[capabilities.switch.ID] = {
          on = function(driver, device)
            local n = 0
            while true do
              n = n + #utils.stringify_table({a = n, b = capabilities.switch.switch.on().value})
              device:set_field("n", n % 7)
            end
          end,
          off = function(driver) driver.datastore.offs = (driver.datastore.offs or 0) + 1 end,
        }}}):run()
    """, key="spin"))
    hub.add_device("spin", "switch", label="S")
    for _ in range(20):
        hub.command("S", "switch", "on")
        hub.command("S", "switch", "off")
    stopped = [e for e in errors(hub)  # (at any line of the loop: its `while` too)
               if re.search(r"init\.lua:(8|9|10): ", e) and "ran for more than 0.05 s and was stopped" in e]
    assert len(stopped) == 20 and len(errors(hub)) == 20, errors(hub)
    assert hub.store.load("spin")["offs"] == 20


def test_where_the_watchdog_cannot_hook_a_state_its_own_hook_keeps_the_limit(monkeypatch):
    """A LuaJIT build that does not show the C function its hooks run through (lua_gethook
    answers NULL): no state is left believing it is watched; each keeps the always-on hook."""
    import hubrt.watchdog as watchdog

    lib = watchdog._sethook()
    if lib is None:
        pytest.skip("this lupa's LuaJIT exports no lua_sethook")

    class Hidden:
        def __getattr__(self, name):
            return getattr(lib, name)

        def lua_gethook(self, state):
            return None

    monkeypatch.setattr(watchdog, "_lib", Hidden())
    monkeypatch.setattr(watchdog, "_hook", None)
    for n in range(2):  # the first state finds out; the next ones are not watched at all
        state = LuaState("luajit", interruptible=True, watched=True)
        outcome = state.helpers.dispatch(0.3, f"runaway {n}".encode(), runaway(state))
        assert outcome[2].endswith(f"runaway {n} ran for more than 0.3 s and was stopped".encode()), outcome
