"""The simulated hub through its Python API: drivers, devices, events, timers, stops."""

import json
import textwrap

import pytest

from conftest import BRIDGE, DIMMER, THERMOSTAT, make_driver
from hubrt.hub import HandlerError, HubError
from hubrt.inputs import InputError


def state(hub, label, cap, attr):
    """The last value the device emitted for cap.attr."""
    values = [e.value for e in hub.events if e.device == label and e.capability == cap and e.attribute == attr]
    assert values, f"{label} never emitted {cap}.{attr}"
    return values[-1]


# -- the flagship dimmer across the three kinds of stop ---------------------


def test_dimmer_state_across_each_kind_of_stop(new_hub):
    hub = new_hub()
    hub.install(DIMMER)
    hub.add_device("virtual-dimmer", "dimmer", label="Lamp")
    hub.command("Lamp", "switch", "on")
    hub.command("Lamp", "switchLevel", "setLevel", [40])
    assert state(hub, "Lamp", "switchLevel", "level") == 40

    hub.restart("driver_crash")  # saved after every handler: nothing lost
    assert state(hub, "Lamp", "switch", "switch") == "on"
    assert state(hub, "Lamp", "switchLevel", "level") == 40

    hub.advance(10)  # past the flush interval: now on disk
    hub.command("Lamp", "switchLevel", "setLevel", [75])
    hub.restart("power_loss")  # the unflushed 75 is lost
    assert state(hub, "Lamp", "switchLevel", "level") == 40

    hub.command("Lamp", "switch", "off")
    hub.restart("graceful")
    assert state(hub, "Lamp", "switch", "switch") == "off"
    assert state(hub, "Lamp", "switchLevel", "level") == 40


def test_commit_from_a_handler_survives_power_loss(new_hub, tmp_path):
    pkg = make_driver(tmp_path / "pkg", """
        local Driver = require "st.driver"
        local driver = Driver("committer", {capability_handlers = {switch = {
          on = function(driver) driver.datastore.n = (driver.datastore.n or 0) + 1; driver.datastore:commit() end,
          off = function(driver) driver.datastore.n = (driver.datastore.n or 0) + 1 end,
        }}})
        driver:run()
    """)
    hub = new_hub()
    hub.install(pkg)
    hub.add_device("test-driver", "switch", label="S")
    hub.command("S", "switch", "on")
    hub.command("S", "switch", "off")  # saved, not flushed
    hub.restart("power_loss")
    assert hub.store.load("test-driver")["n"] == 1


def test_device_records_persist(new_hub):
    hub = new_hub()
    hub.install(DIMMER)
    device = hub.add_device("virtual-dimmer", "dimmer", label="Lamp", preferences={"defaultLevel": 30})
    hub.shutdown()
    hub = new_hub()
    assert hub.devices[device.id].label == "Lamp"
    assert hub.devices[device.id].preferences == {"defaultLevel": 30}
    hub.install(DIMMER)  # init is sent to the existing device
    assert state(hub, "Lamp", "switch", "switch") == "off"
    hub.command("Lamp", "switch", "on")
    assert state(hub, "Lamp", "switchLevel", "level") == 30


def test_removed_device_leaves_no_data(new_hub):
    hub = new_hub()
    hub.install(DIMMER)
    device = hub.add_device("virtual-dimmer", "dimmer", label="Lamp")
    hub.command("Lamp", "switch", "on")
    assert "__" + device.id in hub.store.load("virtual-dimmer")
    hub.remove_device("Lamp")
    hub.restart("graceful")
    assert "__" + device.id not in hub.store.load("virtual-dimmer")
    assert device.id not in hub.devices


# -- the LAN bridge: discovery cache and id map ----------------------------


def bridge_on_the_lan(hub) -> None:
    """A light bridge with canned answers (drivers/lan-bridge/src/bridge_api.lua), and the driver."""
    lights = [{"serial": "A1", "name": "Hall", "on": False}, {"serial": "B2", "name": "Porch", "on": False}]
    routes = {"GET /lights": {"body": json.dumps(lights)}, "GET /events": {"stream": True}}
    for light in lights:
        routes[f"GET /lights/{light['serial']}"] = {"body": json.dumps({"serial": light["serial"], "on": False})}
        routes[f"POST /lights/{light['serial']}/on"] = {"body": json.dumps({"serial": light["serial"], "on": True})}
    hub.lan.add_host("192.168.1.20", http={"port": 8080, "routes": routes},
                     ssdp={"ST": "urn:hubrt:device:light-bridge:1", "LOCATION": "http://192.168.1.20:8080/",
                           "USN": "uuid:bridge-1"})
    hub.install(BRIDGE)
    hub.discover("lan-bridge")
    hub.advance(2)  # the SSDP search listens for 2 s


def test_bridge_reaches_lights_after_restart_without_rediscovery(new_hub):
    hub = new_hub()
    bridge_on_the_lan(hub)
    assert sorted(d.label for d in hub.devices.values()) == ["Hall", "Porch"]
    hub.command("Hall", "switch", "on")
    hub.restart("graceful")
    searches = sum(1 for sent in hub.lan.sent if sent.data.startswith(b"M-SEARCH"))
    hub.command("Porch", "switch", "on")
    data = hub.store.load("lan-bridge")
    assert data["last_discovery"] == 1 and searches == 1, "the cached address was enough"
    assert sorted(data["id_map"].values()) == ["bridge-light-A1", "bridge-light-B2"]
    assert state(hub, "Porch", "switch", "switch") == "on"


def test_bridge_cache_lost_in_a_power_cut_is_rebuilt_on_demand(new_hub):
    hub = new_hub()
    bridge_on_the_lan(hub)
    hub.restart("power_loss")  # nothing flushed: the cache is gone, the device records are not
    assert len(hub.devices) == 2
    hub.command("Hall", "switch", "on")  # an unknown light: the driver searches again
    hub.advance(2)
    assert hub.store.load("lan-bridge")["discovery_cache"]["bridge-light-A1"]["serial"] == "A1"
    assert state(hub, "Hall", "switch", "switch") == "on"


# -- the thermostat: timers and per-device setpoints --------------------------


def test_thermostat_schedule_carries_on_after_restart(new_hub):
    hub = new_hub()
    hub.install(THERMOSTAT)
    hub.add_device("thermostat", "thermostat", label="Room", preferences={"setbackAfter": 600})
    hub.command("Room", "thermostatHeatingSetpoint", "setHeatingSetpoint", [21])
    hub.advance(300)  # five control loops at 0.5 degrees each
    assert state(hub, "Room", "temperatureMeasurement", "temperature") == 20.5
    hub.restart("graceful")
    assert state(hub, "Room", "thermostatHeatingSetpoint", "heatingSetpoint") == 21
    hub.advance(600)
    assert state(hub, "Room", "thermostatHeatingSetpoint", "heatingSetpoint") == 18, "the setback still happened"
    assert hub.store.load("thermostat")["setbacks"] == 1


def test_os_time_in_driver_code_follows_the_hub_clock(new_hub, tmp_path):
    pkg = make_driver(tmp_path / "clock", """
        local log = require "log"
        local driver = require("st.driver")("clock", {})
        local started = os.time()
        driver:call_on_schedule(3600, function()
          log.info("elapsed " .. (os.time() - started) .. " date " .. os.date("%Y-%m-%d %H:%M:%S", started + 3600))
          log.info("now " .. os.date("%Y-%m-%d %H:%M:%S"))
        end)
        driver:run()
    """)
    logs = []
    hub = new_hub(on_log=lambda record: logs.append(record.text))
    hub.install(pkg)
    hub.advance(2 * 3600)
    first_now = logs[1].removeprefix("now ")
    assert logs[0] == f"elapsed 3600 date {first_now}", "os.time() and os.date() agree with hub time"
    assert logs[2].startswith("elapsed 7200 "), logs


def test_thermostat_setpoints_are_per_device(new_hub):
    hub = new_hub()
    hub.install(THERMOSTAT)
    hub.add_device("thermostat", "thermostat", label="A")
    hub.add_device("thermostat", "thermostat", label="B")
    hub.command("A", "thermostatHeatingSetpoint", "setHeatingSetpoint", [22])
    hub.command("B", "thermostatMode", "setThermostatMode", ["off"])
    hub.restart("driver_crash")
    assert state(hub, "A", "thermostatHeatingSetpoint", "heatingSetpoint") == 22
    assert state(hub, "B", "thermostatMode", "thermostatMode") == "off"
    assert state(hub, "A", "thermostatMode", "thermostatMode") == "heat"


# -- handler errors, runaway handlers, crashes ---------------------------------

FAULTY = """
    local Driver = require "st.driver"
    local capabilities = require "st.capabilities"
    local driver = Driver("faulty", {capability_handlers = {switch = {
      on = function(driver, device)
        error("boom")
      end,
      off = function(driver, device)
        device:emit_event(capabilities.switch.switch.off())
      end,
    }, switchLevel = {
      setLevel = function(driver, device, command)
        if command.args.level == 1 then while true do end end
        if command.args.level == 2 then while true do pcall(function() while true do end end) end end
        if command.args.level == 3 then
          local co = coroutine.wrap(function() while true do end end)
          co()
        end
        if command.args.level == 4 then os.exit(1) end
        if command.args.level == 5 then device:emit_event(capabilities.switchLevel.level(500)) end
        if command.args.level == 6 then device.label = "renamed" end
      end,
    }}})
    driver:run()
"""


def test_handler_error_is_logged_with_file_and_line_and_the_driver_goes_on(new_hub, tmp_path):
    hub = new_hub()
    hub.install(make_driver(tmp_path / "faulty", FAULTY))
    hub.add_device("test-driver", "switch", label="S")
    hub.command("S", "switch", "on")
    errors = [r for r in hub.logs if r.level == "error"]
    assert len(errors) == 1
    assert "capability switch.on for S" in errors[0].text
    assert "faulty/src/init.lua:6: boom" in errors[0].text and "stack traceback" in errors[0].text
    hub.command("S", "switch", "off")
    assert state(hub, "S", "switch", "switch") == "off"


def test_handler_errors_can_be_fatal(new_hub, tmp_path):
    hub = new_hub(fatal_handler_errors=True)
    hub.install(make_driver(tmp_path / "faulty", FAULTY))
    hub.add_device("test-driver", "switch", label="S")
    with pytest.raises(HandlerError, match="init.lua:6: boom"):
        hub.command("S", "switch", "on")


@pytest.mark.parametrize("level", [1, 2, 3])
def test_runaway_handler_is_stopped_and_the_hub_goes_on(new_hub, tmp_path, level):
    hub = new_hub(handler_timeout=0.3)
    hub.install(make_driver(tmp_path / "faulty", FAULTY))
    hub.add_device("test-driver", "switch", label="S")
    hub.command("S", "switchLevel", "setLevel", [level])
    errors = [r.text for r in hub.logs if r.level == "error"]
    assert len(errors) == 1 and "capability switchLevel.setLevel for S ran for more than 0.3 s" in errors[0]
    hub.command("S", "switch", "off")
    assert state(hub, "S", "switch", "switch") == "off"


def test_os_exit_in_a_handler_is_a_driver_crash_and_the_driver_restarts(new_hub, tmp_path):
    hub = new_hub()
    hub.install(make_driver(tmp_path / "faulty", FAULTY))
    hub.add_device("test-driver", "switch", label="S")
    hub.command("S", "switchLevel", "setLevel", [4])
    texts = [r.text for r in hub.logs]
    assert any("driver crash" in t and "os.exit(1)" in t for t in texts)
    assert any("restarting the driver" in t for t in texts)
    hub.command("S", "switch", "off")
    assert state(hub, "S", "switch", "switch") == "off"


@pytest.mark.parametrize("level, expected", [
    (5, "init.lua:20: switchLevel.level: 500 is above the maximum 100"),
    (6, "init.lua:21: device.label is read-only; store data with device:set_field"),
])
def test_driver_mistakes_name_the_driver_line(new_hub, tmp_path, level, expected):
    hub = new_hub()
    hub.install(make_driver(tmp_path / "faulty", FAULTY))
    hub.add_device("test-driver", "switch", label="S")
    hub.command("S", "switchLevel", "setLevel", [level])
    errors = [r.text for r in hub.logs if r.level == "error"]
    assert len(errors) == 1 and expected in errors[0]


def test_crash_at_start_is_retried_then_reported(new_hub, tmp_path):
    hub = new_hub()
    with pytest.raises(HubError, match="crashed 3 times while starting"):
        hub.install(make_driver(tmp_path / "bad", 'error("no config found")\n'))
    assert sum("no config found" in r.text for r in hub.logs) == 3



@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_a_main_chunk_that_never_reaches_driver_run_is_stopped_at_its_line(new_hub, tmp_path, isolation):
    """The main chunk runs under --handler-timeout like a handler: stopped at its line (a hub in a Lua
    test, with no worker to kill, used to wait for it forever), then tried again as a crash is."""
    hub = new_hub(handler_timeout=0.3, isolation=isolation)
    with pytest.raises(HubError, match="crashed 3 times while starting"):
        hub.install(make_driver(tmp_path / "spin", 'local Driver = require "st.driver"\nwhile true do end\n'))
    stopped = [r.text for r in hub.logs if "src/init.lua ran for more than 0.3 s and was stopped" in r.text]
    assert len(stopped) == 3 and all("init.lua:2:" in text for text in stopped), [r.text for r in hub.logs]



@pytest.mark.parametrize("isolation", ["process", "inline"])
def test_a_main_chunk_that_runs_away_after_driver_run_returns_is_stopped_and_the_stop_goes_on(new_hub, tmp_path,
                                                                                                isolation):
    """At a graceful stop the rest of the main chunk runs under --handler-timeout too (a Lua test's hub
    waited for it forever at the test's end); what the driver saved is kept."""
    hub = new_hub(handler_timeout=0.3, isolation=isolation)
    hub.install(make_driver(tmp_path / "spin", """
        local Driver = require "st.driver"
        local driver = Driver("spin", {})
        driver.datastore.kept = "yes"
        driver:run()
        while true do end
    """, key="spin"))
    hub.restart("graceful")
    stopped = [r.text for r in hub.logs if "src/init.lua after driver:run() ran for more than 0.3 s" in r.text]
    assert len(stopped) == 1 and "init.lua:6:" in stopped[0], [r.text for r in hub.logs]
    assert hub.store.load("spin")["kept"] == "yes"


# -- the driver API ----------------------------------------------------------------

API = """
    local Driver = require "st.driver"
    local capabilities = require "st.capabilities"
    local special = {
      NAME = "special",
      can_handle = function(opts, driver, device) return device.label == "Special" end,
      capability_handlers = {switch = {on = function(driver, device)
        device:set_field("who", "sub-driver", {persist = true})
      end}},
    }
    local driver = Driver("api", {
      sub_drivers = {special},
      capability_handlers = {switch = {
        on = function(driver, device)
          device:set_field("who", "main", {persist = true})
          device:set_field("scratch", "transient")
          device:emit_event(capabilities.switch.switch.on())
        end,
        off = function(driver, device)
          assert(device:get_field("scratch") == nil, "transient fields do not survive a restart")
          assert(device:get_latest_state("main", "switch", "switch") == "on")
          assert(device:get_field("who") == "main")
          device:emit_event(capabilities.switch.switch.off())
        end,
      }},
      lifecycle_handlers = {
        infoChanged = function(driver, device, event, args)
          driver.datastore.rename = {old = args.old_st_store.label, new = device.label}
        end,
      },
    })
    driver:call_with_delay(5, function(d) d.datastore.fired = (d.datastore.fired or 0) + 1 end, "once")
    local t = driver:call_on_schedule(2, function(d) d.datastore.ticks = (d.datastore.ticks or 0) + 1 end)
    driver:call_with_delay(7, function(d) d:cancel_timer(t) end)
    driver:run()
"""


def test_sub_drivers_fields_state_cache_and_timers(new_hub, tmp_path):
    hub = new_hub(fatal_handler_errors=True)
    hub.install(make_driver(tmp_path / "api", API))
    plain = hub.add_device("test-driver", "switch", label="Plain")
    special = hub.add_device("test-driver", "switch", label="Special")
    hub.command("Plain", "switch", "on")
    hub.command("Special", "switch", "on")
    data = hub.store.load("test-driver")
    assert data["__" + plain.id]["who"] == "main" and data["__" + special.id]["who"] == "sub-driver"
    hub.advance(10)
    data = hub.store.load("test-driver")
    assert data["fired"] == 1 and data["ticks"] == 3  # at 2, 4, 6; cancelled at 7
    hub.restart("graceful")
    hub.command("Plain", "switch", "off")  # asserts inside the handler
    hub.update_device("Plain", label="Renamed")
    assert hub.store.load("test-driver")["rename"] == {"old": "Plain", "new": "Renamed"}


def test_st_json_and_utils(new_hub, tmp_path):
    hub = new_hub(fatal_handler_errors=True)
    hub.install(make_driver(tmp_path / "j", """
        local json = require "st.json"
        local utils = require "st.utils"
        local text = json.encode({a = {1, 2, 3}, b = "x"})
        local back = json.decode(text)
        assert(back.a[3] == 3 and back.b == "x")
        assert(utils.round(2.5) == 3 and utils.clamp_value(12, 0, 10) == 10)
        assert(utils.deep_copy({x = {y = 1}}).x.y == 1)
        assert(utils.stringify_table({b = 1, a = "s"}) == '{a="s", b=1}')
        assert(not pcall(json.decode, "{broken"))
        require("st.driver")("j", {}):run()
    """))


# -- bad input -------------------------------------------------------------------------


def test_package_problems_name_the_file(new_hub, tmp_path):
    hub = new_hub()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="config.yml is missing"):
        hub.install(tmp_path / "empty")
    pkg = make_driver(tmp_path / "p1", "")
    (pkg / "src" / "init.lua").unlink()
    with pytest.raises(InputError, match="src/init.lua is missing"):
        hub.install(pkg)
    pkg = make_driver(tmp_path / "p2", "", profiles={"bad": "name: bad\ncomponents:\n  - id: main\n    capabilities: [\n"})
    with pytest.raises(InputError, match=r"profiles/bad.yml:\d+: invalid YAML"):
        hub.install(pkg)
    pkg = make_driver(tmp_path / "p3", "", profiles={"typo": "name: t\ncomponents:\n  - id: main\n"
                                                             "    capabilities:\n      - id: swtich\n"})
    strict = new_hub(strict=True, state_dir=tmp_path / "strict")
    with pytest.raises(InputError, match=r"profiles/typo.yml:5: unknown capability 'swtich' \(did you mean "
                                         r"'switch'\?\) .*\(--strict\)"):
        strict.install(pkg)


def test_commands_are_checked(new_hub):
    hub = new_hub()
    hub.install(DIMMER)
    hub.add_device("virtual-dimmer", "switch", label="Plug")
    with pytest.raises(HubError, match="no device 'Nope'"):
        hub.command("Nope", "switch", "on")
    with pytest.raises(HubError, match="does not support capability 'switchLevel'"):
        hub.command("Plug", "switchLevel", "setLevel", [10])
    with pytest.raises(HubError, match="has no command 'toggle'"):
        hub.command("Plug", "switch", "toggle")
    with pytest.raises(HubError, match="does not support capability 'swich'.*did you mean 'switch'"):
        hub.command("Plug", "swich", "on")


def test_driver_package_capabilities_folder(new_hub, tmp_path):
    pkg = make_driver(tmp_path / "custom", """
        local capabilities = require "st.capabilities"
        require("st.driver")("custom", {capability_handlers = {["myco.fanSpeed"] = {
          setSpeed = function(driver, device, command)
            device:emit_event(capabilities["myco.fanSpeed"].speed(command.args.speed))
          end}}}):run()
    """, profiles={"fan": "name: fan\ncomponents:\n  - id: main\n    capabilities:\n      - id: myco.fanSpeed\n"},
        files={"capabilities/fan.yml": """
            myco.fanSpeed:
              attributes:
                speed: {type: enum, values: [low, high]}
              commands:
                setSpeed: [{name: speed, type: enum, values: [low, high]}]
        """})
    hub = new_hub(fatal_handler_errors=True)
    hub.install(pkg)
    hub.add_device("test-driver", "fan", label="Fan")
    hub.command("Fan", "myco.fanSpeed", "setSpeed", ["high"])
    assert state(hub, "Fan", "myco.fanSpeed", "speed") == "high"
    with pytest.raises(HubError, match="'medium' is not one of 'low', 'high'"):
        hub.command("Fan", "myco.fanSpeed", "setSpeed", ["medium"])


def test_crash_in_init_restarts_the_driver_once_per_crash(new_hub, tmp_path):
    pkg = make_driver(tmp_path / "initcrash", """
        require("st.driver")("initcrash", {lifecycle_handlers = {init = function(driver, device)
          driver.datastore.inits = (driver.datastore.inits or 0) + 1
          driver.datastore:commit()
          if driver.datastore.inits == 2 then os.exit(3) end
        end}}):run()
    """)
    hub = new_hub()
    hub.install(pkg)
    hub.add_device("test-driver", "switch", label="A")  # init 1
    hub.restart("graceful")  # init 2 crashes; the restarted driver's init is the 3rd
    assert hub.store.load("test-driver")["inits"] == 3
    assert sum("driver crash" in r.text for r in hub.logs) == 1
    assert hub.drivers["test-driver"].running, "the restarted driver is the one running"


def test_syntax_error_in_init_is_reported_once(new_hub, tmp_path):
    hub = new_hub()
    with pytest.raises(HubError, match="cannot start: fix the syntax error"):
        hub.install(make_driver(tmp_path / "broken", "local x = = 1\n"))
    errors = [r.text for r in hub.logs if r.level == "error"]
    assert len(errors) == 1 and "broken/src/init.lua:1:" in errors[0]


def test_a_timer_delay_that_is_not_a_time_is_refused_and_other_timers_keep_firing(new_hub, tmp_path):
    hub = new_hub()
    hub.install(make_driver(tmp_path / "a", """
        local Driver = require "st.driver"
        local driver = Driver("a", {capability_handlers = {switch = {on = function(d)
          for _, delay in ipairs{0/0, math.huge, -1} do
            local ok, err = pcall(d.call_with_delay, d, delay, function() end)
            assert(not ok and err:find("init.lua:5: timer delay must be a finite number"), err)
          end
        end}}})
        driver:run()
    """, key="a"))
    hub.install(make_driver(tmp_path / "b", """
        local Driver = require "st.driver"
        local driver = Driver("b", {})
        driver:call_on_schedule(1, function(d) d.datastore.ticks = (d.datastore.ticks or 0) + 1 end)
        driver:run()
    """, key="b"))
    hub.add_device("a", "switch", label="A")
    hub.command("A", "switch", "on")
    assert not [r.text for r in hub.logs if r.level == "error"]
    hub.advance(5)
    assert hub.store.load("b")["ticks"] == 5


@pytest.mark.parametrize("seconds", [float("inf"), float("nan"), -1])
def test_advance_refuses_what_is_not_a_span_of_time(new_hub, seconds):
    hub = new_hub()
    with pytest.raises(HubError, match="finite number of seconds"):
        hub.advance(seconds)


def test_a_stray_yield_in_the_main_chunk_is_a_driver_crash_at_its_line(new_hub, tmp_path):
    hub = new_hub()
    with pytest.raises(HubError, match="crashed 3 times while starting"):
        hub.install(make_driver(tmp_path / "y", """
            local Driver = require "st.driver"
            coroutine.yield()
            Driver("y", {}):run()
        """))
    crashes = [r.text for r in hub.logs if "driver crash" in r.text]
    assert len(crashes) == 3 and "coroutine.yield() in the main chunk" in crashes[0] \
        and "init.lua:3: in main chunk" in crashes[0], crashes


def _ticker(key: str, period: float) -> str:
    return f"""
        local Driver = require "st.driver"
        local driver = Driver("{key}", {{}})
        driver:call_on_schedule({period}, function(d)
          d.datastore.ticks = (d.datastore.ticks or 0) + 1
          require("log").info("{key} tick", d.datastore.ticks, os.time())
        end)
        driver:run()
    """


def test_virtual_time_is_deterministic_with_several_workers(new_hub, tmp_path):
    """Each driver's worker is a process, yet timers of different drivers fire in due order, and the
    hub's clock moves only once every worker is idle: the same run gives the same log."""
    runs = []
    for run in range(2):
        hub = new_hub()
        hub.install(make_driver(tmp_path / f"a{run}", _ticker("a", 2), key="a"))
        hub.install(make_driver(tmp_path / f"b{run}", _ticker("b", 3), key="b"))
        hub.advance(12)
        runs.append([(r.time, r.text.split()[0], r.text.split()[3]) for r in hub.logs if "tick" in r.text])
        hub.restart("power_loss")
        hub.shutdown()
        import shutil
        shutil.rmtree(tmp_path / "state")
    for ticks in runs:
        assert [(t, who) for t, who, _ in ticks] == [
            (2.0, "a"), (3.0, "b"), (4.0, "a"), (6.0, "a"), (6.0, "b"), (8.0, "a"), (9.0, "b"), (10.0, "a"),
            (12.0, "a"), (12.0, "b")]
        start = int(ticks[0][2]) - 2  # os.time() follows hub time
        assert [int(epoch) - start for _, _, epoch in ticks] == [int(t) for t, _, _ in ticks], ticks


def test_a_long_run_keeps_the_last_events_and_logs_and_says_so(new_hub, tmp_path, monkeypatch):
    """A hub that runs for days (or a Lua test that advances a year) keeps its most recent events and
    log lines, not all of them (they grew without end), and says so once when it first lets one go."""
    import hubrt.history
    from hubrt.scenario import Runner, load_scenario

    monkeypatch.setattr(hubrt.history, "HISTORY_LIMIT", 6)
    seen = []  # every log line, as `hubrt run` shows them
    hub = new_hub(on_log=lambda record: seen.append(record.text))
    hub.install(DIMMER)
    hub.add_device("virtual-dimmer", "dimmer", label="Lamp")
    for i in range(10):
        hub.command("Lamp", "switch", "on" if i % 2 else "off")
    assert len(hub.events) == 6 and hub.events.dropped == 16, hub.events.dropped  # 2 at init, 2 per command
    assert [e.value for e in hub.events][-2:] == ["on", 100]
    for i in range(10):
        hub.log("info", "virtual-dimmer", f"line {i}")
    assert [r.text for r in hub.logs][-3:] == ["line 7", "line 8", "line 9"] and hub.logs.dropped > 0
    assert sum("the hub keeps its last 6 events" in text for text in seen) == 1
    assert sum("the hub keeps its last 6 log lines" in text for text in seen) == 1
    scenario = tmp_path / "s.yml"
    scenario.write_text("- print: events\n")
    shown: list[str] = []
    Runner(hub, out=shown.append).run(load_scenario(scenario))
    assert shown[0] == "... 16 earlier events not kept" and len(shown) == 7, shown


def test_a_new_device_has_the_defaults_its_profile_defines(new_hub, tmp_path):
    """As on a hub, a device's preferences start from each definition's default (where the platform
    writes it: most public drivers read device.preferences without a fallback); a 'default' beside
    the definition is not the platform's and is ignored, with a warning; given values win."""
    from conftest import SWITCH_PROFILE

    seen = []
    hub = new_hub(on_log=lambda record: seen.append(record.text))
    hub.install(make_driver(tmp_path / "prefs", """
        local Driver = require "st.driver"
        Driver("prefs", {lifecycle_handlers = {added = function(driver, device)
          driver.datastore[device.label] = {interval = device.preferences.interval,
                                            mode = device.preferences.mode, old = device.preferences.old}
        end}}):run()
    """, key="prefs", profiles={"switch": SWITCH_PROFILE + textwrap.dedent("""\
        preferences:
          - name: interval
            preferenceType: integer
            definition: {minimum: 10, maximum: 3600, default: 300}
          - name: mode
            preferenceType: enumeration
            definition: {options: {fast: Fast, slow: Slow}, default: slow}
          - name: old
            preferenceType: integer
            default: 5
          - preferenceId: tempOffset
            explicit: true
        """)}))
    hub.add_device("prefs", "switch", label="A")
    hub.add_device("prefs", "switch", label="B", preferences={"interval": 60})
    saved = hub.store.load("prefs")
    assert saved["A"] == {"interval": 300, "mode": "slow"}, saved
    assert saved["B"] == {"interval": 60, "mode": "slow"}, saved
    warned = [text for text in seen if "preference 'old': a default goes in its definition" in text]
    assert len(warned) == 1 and "switch.yml:" in warned[0], seen


def test_an_event_is_a_state_change_when_its_value_changes_or_its_driver_says_so(new_hub, tmp_path):
    """As on a hub: a repeated value is not a state change unless the event says it is (in Lua's
    sense of true: any value but nil and false)."""
    pkg = make_driver(tmp_path / "pkg", """
        local capabilities = require "st.capabilities"
        local Driver = require "st.driver"
        local function emit(device, extra) device:emit_event(capabilities.switch.switch.on(extra)) end
        Driver("changes", {capability_handlers = {switch = {on = function(_, device)
          emit(device)
          emit(device)
          emit(device, {state_change = true})
          emit(device, {state_change = 0})
          emit(device, {state_change = false})
        end}}}):run()
    """)
    hub = new_hub()
    hub.install(pkg)
    hub.add_device("test-driver", "switch", label="Plug")
    hub.events.clear()
    hub.command("Plug", "switch", "on")
    assert [e.state_change for e in hub.events] == [True, False, True, True, False]
