"""`hubrt run`, `hubrt devices` and `hubrt store show` as subprocesses."""

import json
import signal
import subprocess
import sys

import pytest

from conftest import BRIDGE, DIMMER, ROOT, THERMOSTAT, hubrt


@pytest.mark.parametrize("package", [DIMMER, BRIDGE, THERMOSTAT], ids=lambda p: p.name)
def test_each_demo_scenario_passes(tmp_path, engine, package):
    result = hubrt("run", str(package), "--script", str(package / "demo.yml"), "--lua", engine,
                   "--state", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "EVENT" in result.stderr and "Traceback" not in result.stderr
    assert "assertion failed" not in result.stderr


def test_devices_and_store_show_read_the_store_back(tmp_path):
    hubrt("run", str(DIMMER), "--script", str(DIMMER / "demo.yml"), "--state", str(tmp_path), check=True)
    devices = hubrt("devices", "--state", str(tmp_path), check=True).stdout
    assert "'Lamp'" in devices and "driver=virtual-dimmer" in devices and "profile=dimmer" in devices
    store = json.loads(hubrt("store", "show", "virtual-dimmer", "--state", str(tmp_path), check=True).stdout)
    device_data = next(v for k, v in store.items() if k.startswith("__"))
    assert device_data["on"] is False and device_data["level"] == 40


def test_failed_assertion_exits_1_naming_the_line(tmp_path):
    script = tmp_path / "s.yml"
    script.write_text('- add_device: {profile: dimmer, label: Lamp}\n'
                      '- assert: {device: Lamp, state: switch.switch, equals: "on"}\n')
    result = hubrt("run", str(DIMMER), "--script", str(script), "--state", str(tmp_path / "state"))
    assert result.returncode == 1
    assert f"{script}:2: assertion failed: Lamp switch.switch is 'off', expected 'on'" in result.stderr


@pytest.mark.parametrize("text, expected", [
    ("- add_devise: {profile: dimmer}\n", ":1: unknown step 'add_devise' (did you mean 'add_device'?)"),
    ("- add_device: {profile: dimmer}\n- command: {device: x, capabilty: switch, command: on}\n",
     ":2: command has no argument 'capabilty' (did you mean 'capability'?)"),
    ("- restart: reboot\n", ":1: restart takes one of driver_crash, graceful, power_loss"),
    ("- advance: soon\n", ":1: advance takes a finite number of seconds"),
    ("- command: [oops\n", ":2: invalid YAML: did not find expected ',' or ']'"),
    ("add_device: x\n", ":1: a scenario is a list of steps"),
    ("- discover: [null]\n", ":1: discover: 'driver' must be a name, got [None]"),  # found by fuzzing
    ("- \x1f\n", "invalid YAML: unacceptable character #x001f"),  # found by fuzzing
])
def test_scenario_typos_are_one_line_messages_and_change_nothing(tmp_path, text, expected):
    script = tmp_path / "s.yml"
    script.write_text(text)
    state = tmp_path / "state"
    hubrt("run", str(DIMMER), "--script", str(DIMMER / "demo.yml"), "--state", str(state), check=True)
    before = (state / "hub.db").read_bytes()
    result = hubrt("run", str(DIMMER), "--script", str(script), "--state", str(state))
    assert result.returncode == 2
    assert expected in result.stderr and str(script) in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert (state / "hub.db").read_bytes() == before


@pytest.mark.parametrize("step, expected", [
    ("- command: {device: Nobody, capability: switch, command: 'on'}", "no device 'Nobody'"),
    ("- command: {device: Lamp, capability: colorControl, command: setHue, args: [1]}",
     "does not support capability 'colorControl'"),
    ("- command: {device: Lamp, capability: switchLevel, command: setLevel, args: [150]}",
     "150 is above the maximum 100"),
])
def test_refused_steps_name_the_line(tmp_path, step, expected):
    script = tmp_path / "s.yml"
    script.write_text("- add_device: {profile: dimmer, label: Lamp}\n" + step + "\n")
    result = hubrt("run", str(DIMMER), "--script", str(script), "--state", str(tmp_path / "state"))
    assert result.returncode == 2
    assert f"{script}:2: " in result.stderr and expected in result.stderr, result.stderr


@pytest.mark.parametrize("make, expected", [
    (lambda p: p.mkdir(), "config.yml is missing"),
    (lambda p: None, "does not exist"),
])
def test_bad_driver_folders(tmp_path, make, expected):
    make(tmp_path / "drv")
    result = hubrt("run", str(tmp_path / "drv"), "--script", str(DIMMER / "demo.yml"), "--state", str(tmp_path / "s"))
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr


def test_run_help_answers():
    result = hubrt("run", "--help", check=True)
    for option in ("--script", "--lua", "--state", "--flush-interval", "--handler-timeout", "--clock",
                   "add_device", "restart"):
        assert option in result.stdout


def test_sigkill_of_hubrt_run_keeps_exactly_what_was_flushed(tmp_path, engine):
    """Power loss for real: a running `hubrt run` is killed; only flushed data survives."""
    script = tmp_path / "s.yml"
    script.write_text("""
- add_device: {profile: dimmer, label: Lamp, id: lamp}
- command: {device: Lamp, capability: switch, command: "on"}
- command: {device: Lamp, capability: switchLevel, command: setLevel, args: [40]}
- flush
- command: {device: Lamp, capability: switchLevel, command: setLevel, args: [75]}
- wait: 60
""")
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "hubrt", "run", str(DIMMER), "--script", str(script),
                             "--state", str(state), "--lua", engine, "--clock", "real", "--flush-interval", "1000"],
                            cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stderr:
            if "switchLevel.level = 75" in line:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store = json.loads(hubrt("store", "show", "virtual-dimmer", "--state", str(state), check=True).stdout)
    assert store["__lamp"]["level"] == 40 and store["__lamp"]["on"] is True
    assert store["switched"] == 1
    assert "'Lamp'" in hubrt("devices", "--state", str(state), check=True).stdout


@pytest.mark.parametrize("value", [".inf", ".nan", "-.inf"])
def test_a_scenario_advance_that_is_not_a_span_of_time_is_bad_input(tmp_path, value):
    script = tmp_path / "s.yml"
    script.write_text(f"- add_device: {{profile: dimmer, label: Lamp}}\n- advance: {value}\n")
    result = hubrt("run", str(DIMMER), "--script", str(script), "--state", str(tmp_path / "state"))
    assert result.returncode == 2, result.stderr
    assert f"{script}:2: advance takes a finite number of seconds >= 0" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("step, message", [
    ("- add_device: {profile: dimmer, label: B, preferences: {1: 2}}", ":2: add_device: preference names are text"),
    ("- add_device: {profile: dimmer, label: B, preferences: {x: !!set {a}}}",
     ":2: add_device: preference 'x': a value is text, a number or true/false"),
    ("- update_device: {device: A, preferences: {x: [1]}}", ":2: update_device: preference 'x'"),
])
def test_bad_preferences_in_a_scenario_are_one_line_and_lose_nothing(tmp_path, step, message):
    state = tmp_path / "state"
    first = tmp_path / "first.yml"
    first.write_text("- add_device: {profile: dimmer, label: A}\n"
                     "- command: {device: A, capability: switchLevel, command: setLevel, args: [40]}\n")
    hubrt("run", str(DIMMER), "--script", str(first), "--state", str(state), check=True)
    script = tmp_path / "s.yml"
    script.write_text(f"- command: {{device: A, capability: switchLevel, command: setLevel, args: [70]}}\n{step}\n")
    result = hubrt("run", str(DIMMER), "--script", str(script), "--state", str(state))
    assert result.returncode == 2 and f"{script}{message}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    shown = json.loads(hubrt("store", "show", "virtual-dimmer", "--state", str(state), check=True).stdout)
    assert [v["level"] for k, v in shown.items() if k.startswith("__")] == [40], "the saved level is still there"


def test_a_bare_date_preference_reaches_the_driver_as_text(tmp_path):
    from conftest import make_driver
    pkg = make_driver(tmp_path / "pkg", """
        require("st.driver")("d", {lifecycle_handlers = {added = function(driver, device)
          local since = device.preferences.since
          driver.datastore.seen = type(since) .. ":" .. tostring(since)
        end}}):run()
    """)
    script = tmp_path / "s.yml"
    script.write_text("- add_device: {profile: switch, label: A, preferences: {since: 2024-01-02}}\n"
                      "- assert: {driver: test-driver, datastore: seen, equals: 'string:2024-01-02'}\n")
    result = hubrt("run", str(pkg), "--script", str(script), "--state", str(tmp_path / "st"))
    assert result.returncode == 0, result.stderr


def test_scenarios_add_children_and_change_profiles_and_devices_shows_the_family(tmp_path):
    script = tmp_path / "s.yml"
    script.write_text("- add_device: {profile: hub, label: Strip}\n"
                      "- add_device: {profile: outlet, label: Extra, parent: Strip, child_key: x}\n"
                      "- update_device: {device: Strip, profile: dimmable}\n"
                      "- command: {device: Strip, capability: switchLevel, command: setLevel, args: [30]}\n")
    tour = ROOT / "tests" / "fixtures" / "api-tour"
    hubrt("run", str(tour), "--script", str(script), "--state", str(tmp_path / "st"), check=True)
    lines = hubrt("devices", "--state", str(tmp_path / "st"), check=True).stdout.splitlines()
    assert "'Strip'" in lines[0] and "profile=dimmable" in lines[0] and "parent of 'Extra'" in lines[0], lines
    assert "'Extra'" in lines[1] and "child of 'Strip' (key 'x')" in lines[1], lines
