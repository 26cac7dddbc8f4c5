"""The simulated LAN from outside: scenario steps under `hubrt run` (the driver in a worker
process, its socket calls crossing the channel), a driver without LAN permission, and bad steps.
The socket semantics themselves are Lua tests: tests/fixtures/lan-tour."""

from conftest import ROOT, hubrt, make_driver

LAN_TOUR = ROOT / "tests" / "fixtures" / "lan-tour"


def test_a_scenario_puts_a_host_on_the_lan_and_breaks_it(tmp_path, engine):
    script = tmp_path / "lan.yml"
    script.write_text("""
- lan_host: {ip: 192.168.1.50, http: {port: 80, routes: {GET /state: {status: 200, body: "on"}}}}
- add_device: {profile: lamp, label: L, network_id: "192.168.1.50:80"}
- command: {device: L, capability: refresh, command: refresh}
- lan_fault: {ip: 192.168.1.50, fault: refuse}
- command: {device: L, capability: refresh, command: refresh}
- lan_fault: {ip: 192.168.1.50}
- lan_move: {ip: 192.168.1.50, to: 192.168.1.77}
- command: {device: L, capability: refresh, command: refresh}
- advance: 5
- assert: {datastore: http, equals: ["L: HTTP/1.1 200  | on", "L: connect: connection refused", "L: connect: timeout"]}
""")
    result = hubrt("run", str(LAN_TOUR), "--script", str(script), "--lua", engine, "--state", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    assert "ok: datastore http" in result.stdout + result.stderr


def test_a_bad_lan_step_names_its_line(tmp_path):
    script = tmp_path / "lan.yml"
    script.write_text("- lan_host: {ip: 192.168.1.50}\n- lan_fault: {ip: 192.168.1.50, fault: flaky}\n")
    result = hubrt("run", str(LAN_TOUR), "--script", str(script), "--state", str(tmp_path / "s"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{script}:2: lan_fault takes one of refuse, timeout, reset, partial, got 'flaky'" in result.stderr


def test_a_driver_without_lan_permission_is_told_at_its_line(new_hub, tmp_path):
    hub = new_hub()
    hub.install(make_driver(tmp_path / "nolan", """
        local Driver = require "st.driver"
        local socket = require "cosock.socket"
        Driver("nolan", {capability_handlers = {switch = {on = function()
          local sock = socket.tcp()
          sock:connect("192.168.1.50", 80)
        end}}}):run()
    """, key="nolan"))
    hub.add_device("nolan", "switch", label="N")
    hub.command("N", "switch", "on")
    errors = [r.text for r in hub.logs if r.level == "error"]
    assert len(errors) == 1 and "init.lua:6: this driver has no LAN permission" in errors[0], errors
