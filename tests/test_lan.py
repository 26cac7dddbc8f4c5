"""The simulated LAN from outside: scenario steps under `hubrt run` (the driver in a worker
process, its socket calls crossing the channel), a driver without LAN permission, and bad steps.
The socket semantics themselves are Lua tests: tests/fixtures/lan-tour."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

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


# -- the real network: servers the test starts on 127.0.0.1 --------------------------


@pytest.fixture
def local_servers():
    """An HTTP server and a UDP echo server on 127.0.0.1, and a port where nothing listens."""
    class Lamp(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b'{"on": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http = HTTPServer(("127.0.0.1", 0), Lamp)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    stop = threading.Event()

    def echo():
        while not stop.is_set():
            try:
                data, sender = udp.recvfrom(1024)
            except OSError:
                continue
            udp.sendto(data.replace(b"ping", b"pong"), sender)

    threading.Thread(target=echo, daemon=True).start()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    free_port = closed.getsockname()[1]
    closed.close()
    yield http.server_address[1], udp.getsockname()[1], free_port
    stop.set()
    http.shutdown()
    udp.close()


def test_real_sockets_reach_servers_on_this_machine(tmp_path, engine, local_servers):
    http_port, udp_port, free_port = local_servers
    script = tmp_path / "real.yml"
    script.write_text(f"""
- add_device: {{profile: lamp, label: L, network_id: "127.0.0.1:{http_port}"}}
- add_device: {{profile: lamp, label: U, network_id: "udp:127.0.0.1:{udp_port}"}}
- add_device: {{profile: lamp, label: Z, network_id: "127.0.0.1:{free_port}"}}
- command: {{device: L, capability: refresh, command: refresh}}
- command: {{device: U, capability: refresh, command: refresh}}
- command: {{device: Z, capability: refresh, command: refresh}}
- advance: 1
- print: datastore
""")
    result = hubrt("run", str(LAN_TOUR), "--network", "real", "--script", str(script), "--lua", engine,
                   "--state", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert sorted(data["http"]) == ['L: HTTP/1.0 200 OK | {"on": true}', "Z: connect: connection refused"]
    assert data["udp"] == [f"pong U from 127.0.0.1:{udp_port}"]


def test_the_real_network_refuses_a_virtual_clock(tmp_path):
    script = tmp_path / "s.yml"
    script.write_text("- advance: 1\n")
    result = hubrt("run", str(LAN_TOUR), "--network", "real", "--clock", "virtual", "--script", str(script),
                   "--state", str(tmp_path / "s"))
    assert result.returncode != 0 and "--network real runs on the real clock" in result.stderr
    assert "Traceback" not in result.stderr
