"""The hub survives its drivers: each driver runs in a worker process, so an engine crash, a
handler stuck where no Lua hook reaches, or a finaliser gone wrong ends that driver's worker
only. It is treated as a driver crash of that driver (restarted from what it saved); the other
drivers go on and lose nothing."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, make_driver
from hubrt.store import Store

VICTIM = """
local Driver = require "st.driver"
local capabilities = require "st.capabilities"
Driver("victim", {capability_handlers = {[capabilities.switch.ID] = {
  on = function(driver) driver.datastore.count = (driver.datastore.count or 0) + 1 end,
}}}):run()
"""

# handler bodies that end the worker (or would hang the hub) -- each must cost only that driver
KILLERS = {
    # LuaJIT: C-level recursion through gsub segfaults; Lua 5.3 raises "C stack overflow"
    "gsub recursion": 'local function f() return (string.gsub("x", "x", f)) end pcall(f)',
    "nested coroutine.wrap recursion":
        "local function f() return coroutine.wrap(f)() end pcall(f)",
    # a pattern match runs in C: no count hook fires until it returns (hours)
    "pathological pattern": 'string.find(string.rep("a", 3000), ".-.-.-.-.-.-.-.-b")',
    # a coroutine made at the top level, before any handler deadline existed
    "endless loop in a top-level coroutine": "spin()",
    # Lua 5.3 runs no hook inside a finaliser (LuaJIT runs no __gc of tables at all); the garbage
    # made here starts a collection that runs it
    "endless loop in a finaliser":
        "setmetatable({}, {__gc = function() while true do end end}) for i = 1, 3e5 do local t = {i} end",
}


def hostile(body: str) -> str:
    return f"""
local Driver = require "st.driver"
local capabilities = require "st.capabilities"
spin = coroutine.wrap(function() while true do end end)
Driver("hostile", {{capability_handlers = {{[capabilities.switch.ID] = {{
  on = function(driver) driver.datastore.before = true; driver.datastore:save(); {body} end,
  off = function(driver) driver.datastore.alive = true end,
}}}}}}):run()
"""


@pytest.mark.parametrize("name", list(KILLERS))
def test_a_killing_handler_costs_only_its_own_driver(new_hub, tmp_path, engine, name):
    hub = new_hub(handler_timeout=0.3)
    hub.install(make_driver(tmp_path / "hostile", hostile(KILLERS[name]), key="hostile"))
    hub.install(make_driver(tmp_path / "victim", VICTIM, key="victim"))
    hub.add_device("hostile", "switch", label="H")
    hub.add_device("victim", "switch", label="V")
    hub.command("V", "switch", "on")  # saved in the hub's memory, not yet flushed
    start = time.monotonic()
    hub.command("H", "switch", "on")
    took = time.monotonic() - start
    assert took < 10, f"the hub waited {took:.1f} s"
    for text in (r.text for r in hub.logs if r.level == "error" and r.driver == "hostile"):
        assert "capability switch.on for H" in text, text  # (Lua 5.3's pcall catches the C recursion)
    hub.command("V", "switch", "on")
    hub.command("H", "switch", "off")  # the hostile driver runs again (restarted, or never down)
    hub.shutdown()
    store = Store(tmp_path / "state")
    try:
        assert store.load("victim")["count"] == 2, "the other driver lost nothing"
        hostile_data = store.load("hostile")
        assert hostile_data["before"] is True and hostile_data["alive"] is True
    finally:
        store.lose_power()


def test_a_segfault_is_named_as_an_engine_crash(new_hub, tmp_path):
    hub = new_hub(engine="luajit")
    hub.install(make_driver(tmp_path / "hostile", hostile(KILLERS["gsub recursion"]), key="hostile"))
    hub.add_device("hostile", "switch", label="H")
    hub.command("H", "switch", "on")
    crash = [r.text for r in hub.logs if "driver crash" in r.text]
    assert crash and "SIGSEGV" in crash[0] and "the Lua engine crashed" in crash[0], crash
    assert any("restarting the driver after a crash" in r.text for r in hub.logs)


def test_a_stuck_worker_is_killed_and_named(new_hub, tmp_path):
    hub = new_hub(handler_timeout=0.3)
    hub.install(make_driver(tmp_path / "hostile", hostile(KILLERS["pathological pattern"]), key="hostile"))
    hub.add_device("hostile", "switch", label="H")
    hub.command("H", "switch", "on")
    crash = [r.text for r in hub.logs if "driver crash" in r.text]
    assert crash, [r.text for r in hub.logs]
    assert "capability switch.on for H" in crash[0] and "was killed after" in crash[0] \
        and "--handler-timeout 0.3 s" in crash[0], crash[0]


FINALISER = """
local Driver = require "st.driver"
local capabilities = require "st.capabilities"
local driver
driver = Driver("gc", {capability_handlers = {[capabilities.switch.ID] = {
  on = function(d)
    d.datastore.n = (d.datastore.n or 0) + 1
    setmetatable({}, {__gc = function() driver.datastore.from_gc = true; driver.datastore:save() end})
  end,
}}})
driver:run()
"""


@pytest.mark.parametrize("stop", ["driver_crash", "graceful", "power_loss"])
def test_finalisers_that_touch_the_datastore_do_not_crash_the_hub(new_hub, tmp_path, engine, stop):
    hub = new_hub()
    hub.install(make_driver(tmp_path / "gc", FINALISER, key="gc"))
    hub.install(make_driver(tmp_path / "victim", VICTIM, key="victim"))
    hub.add_device("gc", "switch", label="G")
    hub.add_device("victim", "switch", label="V")
    for _ in range(3):
        hub.command("G", "switch", "on")
    hub.command("V", "switch", "on")
    hub.flush()
    hub.restart(stop)
    hub.command("G", "switch", "on")
    hub.command("V", "switch", "on")
    hub.shutdown()
    store = Store(tmp_path / "state")
    try:
        assert store.load("victim")["count"] == 2
        assert store.load("gc")["n"] == 4
    finally:
        store.lose_power()


RUNAWAY_SCENARIO = """
- add_device: {profile: switch, label: V, driver: victim}
- command: {device: V, capability: switch, command: "on"}
- add_device: {profile: switch, label: H, driver: hostile}
- command: {device: H, capability: switch, command: "on"}
- assert: {device: V, field: never, equals: 1}
"""


def test_sigterm_stops_the_hub_whatever_a_driver_is_doing(tmp_path):
    """With no handler limit at all, a driver stuck in C still cannot keep the hub from stopping."""
    make_driver(tmp_path / "hostile", hostile(KILLERS["pathological pattern"]), key="hostile")
    make_driver(tmp_path / "victim", VICTIM, key="victim")
    pid, took, err = sigterm_while_running(tmp_path, RUNAWAY_SCENARIO, tmp_path / "victim", tmp_path / "hostile")
    assert took < 8, f"SIGTERM took {took:.1f} s"
    assert "told to stop" in err, err
    assert "killed" in err, err
    store = Store(tmp_path / "state")
    try:
        assert store.load("victim")["count"] == 1, "the other driver's saved data was flushed"
    finally:
        store.lose_power()
    assert not any(os.path.exists(f"/proc/{child}") for child in _children(pid)), "no worker left behind"


def sigterm_while_running(tmp_path, scenario: str, *drivers) -> tuple[int, float, str]:
    """Runs `hubrt run` with no handler limit, sends SIGTERM 1.5 s in (a driver is stuck by then):
    (its pid, seconds from SIGTERM to exit, its stderr)."""
    (tmp_path / "s.yml").write_text(scenario)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubrt", "run", *map(str, drivers), "--script", str(tmp_path / "s.yml"),
         "--state", str(tmp_path / "state"), "--handler-timeout", "0"],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    time.sleep(1.5)
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()  # a hub that ignores SIGTERM must not outlive the test
    return proc.pid, time.monotonic() - start, err


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


BIG_JSON = """
local Driver = require "st.driver"
local json = require "st.json"
Driver("big", {capability_handlers = {switch = {on = function(driver)
  local s = string.rep("x", 40 * 1024 * 1024)
  local t = {}
  for i = 1, 40 do t[i] = s end  -- 40 MiB in Lua, 1.6 GiB once copied out for encoding
  local ok, err = pcall(json.encode, t)
  driver.datastore.result = tostring(ok) .. ": " .. tostring(err)
end}}}):run()
"""


def test_pipelined_dispatches_are_all_saved_once_the_hub_settles(new_hub, tmp_path, engine):
    """A worker saves after each batch of dispatches (not after each one), before the reply that
    ends the batch: once the hub has settled, killing the worker loses none of them."""
    hub = new_hub()
    hub.install(make_driver(tmp_path / "victim", VICTIM, key="victim"))
    hub.add_device("victim", "switch", label="V")
    for _ in range(300):
        hub.command("V", "switch", "on", wait=False)
    hub.settle()
    hub.crash_driver("victim")  # SIGKILL to the worker process: only what reached the hub survives
    hub.command("V", "switch", "on")
    hub.shutdown()
    store = Store(tmp_path / "state")
    try:
        assert store.load("victim")["count"] == 301
    finally:
        store.lose_power()


def test_a_worker_cannot_take_more_memory_than_its_cap(new_hub, tmp_path, engine):
    """The Lua state's cap does not see what driver calls make Python allocate; the worker's address-space
    limit does, and the driver gets an error it can handle."""
    hub = new_hub(max_memory=128 * 2**20)
    hub.install(make_driver(tmp_path / "big", BIG_JSON, key="big"))
    hub.install(make_driver(tmp_path / "victim", VICTIM, key="victim"))
    hub.add_device("big", "switch", label="B")
    hub.add_device("victim", "switch", label="V")
    hub.command("B", "switch", "on")
    hub.command("V", "switch", "on")
    result = hub.store.load("big")["result"]
    assert result.startswith("false: ") and "not enough memory" in result, result
    assert hub.store.load("victim")["count"] == 1


def test_sigterm_while_a_main_chunk_is_stuck_stops_at_once(tmp_path):
    """A driver stuck in C while starting: the hub kills it once and stops, without restarting it."""
    make_driver(tmp_path / "stuck", 'string.find(string.rep("a", 3000), ".-.-.-.-.-.-.-.-b")\n'
                                    'require("st.driver")("stuck", {}):run()\n', key="stuck")
    _, took, err = sigterm_while_running(tmp_path, "[]\n", tmp_path / "stuck")
    assert took < 4, f"SIGTERM took {took:.1f} s"
    assert err.count("driver crash") == 1 and "restarting" not in err, err


@pytest.mark.parametrize("payload", [b"42", b"[{\"op\": \"log\"}, 7]", b"\"text\"", b"{broken", b"null"])
def test_the_hub_end_refuses_frames_that_are_not_messages(payload):
    """What a compromised worker writes is only ever decoded as data: anything but a JSON object
    (or a list of them) ends the channel, which the hub treats as the worker dying."""
    from hubrt.channel import Channel, ChannelClosed
    hub_end, worker_end = Channel.pair()
    try:
        worker_end.send([{"op": "log", "n": 1}, {"op": "done", "n": 2}])
        assert [m["n"] for m in hub_end.received()] == [1, 2]
        worker_end.sock.sendall(len(payload).to_bytes(4, "big") + payload)
        with pytest.raises(ChannelClosed, match="not a message"):
            hub_end.received()
    finally:
        hub_end.close()
        worker_end.close()



def test_a_last_reply_that_comes_with_the_end_of_the_channel_is_taken():
    """A worker replies to `stop` and exits at once; the hub, waiting for that reply, may find the
    reply and the end of the channel together. It must take the reply, and hear of the end only at
    its next read (it took the end for a crash and dropped the reply: 'driver crash in
    driver_lifecycle shutdown: the worker process died: exit status 0', 18 of 48 CLI runs under
    load). Also when the worker left an unread message behind (the hub then reads ECONNRESET)."""
    from hubrt.channel import Channel, ChannelClosed
    for unread in (False, True):
        hub_end, worker_end = Channel.pair()
        try:
            if unread:
                hub_end.send({"op": "devices"})
            worker_end.send([{"op": "done", "n": 1}])
            worker_end.close()
            assert [m["n"] for m in hub_end.received(timeout=0.1)] == [1]
            with pytest.raises(ChannelClosed):
                hub_end.received(timeout=0.1)
        finally:
            hub_end.close()


ORDERLY = """
local Driver = require "st.driver"
local capabilities = require "st.capabilities"
local cosock = require "cosock"
local log = require "log"
local seen = {}
local function handle(driver, device, command)
  local n = #seen + 1
  seen[n] = command.command .. " " .. device.label
  log.info("handling " .. command.command .. " for " .. device.label)
  cosock.spawn(function() seen[#seen + 1] = "task of " .. n end, "follow-up")
  if command.command == "off" and device.label == "B" then error("refused by B") end
  driver.datastore.seen = table.concat(seen, ",")
end
Driver("orderly", {capability_handlers = {[capabilities.switch.ID] = {on = handle, off = handle}}}):run()
"""


@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_pipelined_dispatches_run_one_at_a_time_whatever_the_batch(new_hub, tmp_path, engine, isolation):
    """A worker takes the dispatches that were waiting together into one call into Lua; each still
    runs as if alone (the tasks it made run before the next dispatch), its logs are told about its
    own device and its error names its own command, in a process as inline."""
    logs = []
    hub = new_hub(isolation=isolation, on_log=logs.append)
    hub.install(make_driver(tmp_path / "orderly", ORDERLY, key="orderly"))
    hub.add_device("orderly", "switch", label="A")
    hub.add_device("orderly", "switch", label="B")
    n = 120
    for i in range(n):
        hub.command("A" if i % 2 else "B", "switch", "on" if i % 3 else "off", wait=False)
    hub.settle()
    expected = []
    for i in range(n):
        expected.append(f"{'on' if i % 3 else 'off'} {'A' if i % 2 else 'B'}")
        expected.append(f"task of {2 * i + 1}")
    last_saved = max(i for i in range(n) if not (i % 2 == 0 and i % 3 == 0))  # B's "off" fails before saving
    assert hub.store.load("orderly")["seen"] == ",".join(expected[:2 * last_saved + 1])
    handled = [r for r in logs if r.text.startswith("handling")]
    assert len(handled) == n and all(r.text.endswith(f"for {r.device}") for r in handled)
    errors = [r.text for r in logs if r.level == "error"]
    assert len(errors) == len(range(0, n, 6)) and all(
        e.startswith("error in capability switch.off for B:") and "refused by B" in e for e in errors), errors
