"""The simulated LAN from outside: scenario steps under `hubrt run` (the driver in a worker
process, its socket calls crossing the channel), a driver without LAN permission, and bad steps.
The socket semantics themselves are Lua tests: tests/fixtures/lan-tour."""

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
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
- assert: {datastore: http, equals: ["L: HTTP/1.1 200 OK | on", "L: connect: connection refused", "L: connect: timeout"]}
""")
    result = hubrt("run", str(LAN_TOUR), "--script", str(script), "--lua", engine, "--state", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    assert "ok: datastore http" in result.stdout + result.stderr


def test_a_scenario_talks_to_a_websocket_and_closes_it(tmp_path):
    script = tmp_path / "ws.yml"
    script.write_text("""
- lan_host: {ip: 192.168.1.60, http: [{port: 8090, routes: {/info: {body: speaker}}},
                                      {port: 8080, routes: {/ws: {websocket: true, echo: true}}}]}
- add_device: {profile: speaker, label: S, network_id: "192.168.1.60:8080/ws"}
- add_device: {profile: speaker, label: I, network_id: "192.168.1.60:8090/info"}
- command: {device: I, capability: refresh, command: refresh}
- command: {device: S, capability: refresh, command: refresh}
- command: {device: S, capability: switch, command: "on"}
- lan_push: {ip: 192.168.1.60, path: /ws, data: '{"volume": 30}'}
- lan_close: {ip: 192.168.1.60, code: 1012, reason: restarting}
- assert: {datastore: S, equals: [connected, "text: hello", 'text: {"volume": 30}', "closed: restarting"]}
- assert: {datastore: I, equals: ["connect failed: invalid handshake: the server answered 200 OK instead of 101 Switching Protocols"]}
- lan_close: {ip: 192.168.1.60, code: 1006}
""")
    result = hubrt("run", str(ROOT / "tests" / "fixtures" / "ws-tour"), "--script", str(script), "--state",
                   str(tmp_path / "s"))
    assert "ok: datastore S" in result.stdout + result.stderr, result.stderr
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"{script}:13: 1006 is not a close code a server may send" in result.stderr


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

        def do_SUBSCRIBE(self):
            subscriptions.append(self.headers["CALLBACK"])
            self.send_response(200)
            self.send_header("SID", "uuid:real-1")
            self.send_header("Content-Length", "0")
            self.end_headers()

    subscriptions: list[str] = []
    http = HTTPServer(("127.0.0.1", 0), Lamp)
    http.subscriptions = subscriptions
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
    yield http.server_address[1], udp.getsockname()[1], free_port, subscriptions
    stop.set()
    http.shutdown()
    udp.close()


def test_real_sockets_reach_servers_on_this_machine(tmp_path, engine, local_servers):
    http_port, udp_port, free_port, _ = local_servers
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


def test_a_driver_listens_on_the_real_network(tmp_path, local_servers):
    """The driver subscribes to a UPnP-style server here, which then connects back to the driver's own
    listening socket with an event while the scenario waits."""
    http_port, _, _, subscriptions = local_servers
    script = tmp_path / "listen.yml"
    script.write_text(f"""
- add_device: {{profile: lamp, label: L, network_id: "127.0.0.1:{http_port}"}}
- command: {{device: L, capability: switch, command: "off"}}
- advance: 3
- print: datastore
""")
    proc = subprocess.Popen([sys.executable, "-m", "hubrt", "run", str(LAN_TOUR), "--network", "real", "--script",
                             str(script), "--state", str(tmp_path / "s")], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while not subscriptions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert subscriptions, "the driver subscribed"
    port = int(re.search(r":(\d+)/", subscriptions[0])[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as event:
        event.sendall(b"NOTIFY / HTTP/1.1\r\nHOST: hub\r\nSID: uuid:real-1\r\nCONTENT-LENGTH: 10\r\n\r\n<on>1</on>")
        answer = event.recv(1024)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert answer.startswith(b"HTTP/1.1 200"), answer
    data = json.loads(out[out.index("{"):])
    assert data["notify"] == ["subscribed: 200 uuid:real-1", "NOTIFY uuid:real-1 <on>1</on>"], data


TLS_CLIENT = """
local Driver = require "st.driver"
local socket = require "cosock.socket"
local ssl = require "cosock.ssl"
-- the device network id: "none|peer ip:port"; the answer (or why not) goes to the datastore
Driver("tls", {capability_handlers = {switch = {on = function(driver, device)
  local verify, ip, port = device.device_network_id:match("^(%a+) ([^:]+):(%d+)$")
  local sock = socket.tcp()
  sock:settimeout(5)
  assert(sock:connect(ip, tonumber(port)))
  sock = assert(ssl.wrap(sock, {mode = "client", protocol = "any", verify = verify, options = "all"}))
  sock:sni("localhost")
  local ok, err = sock:dohandshake()
  if not ok then driver.datastore[device.label] = "handshake: " .. err return end
  sock:send("GET /state HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n")
  local answer, rerr, partial = sock:receive("*a")
  driver.datastore[device.label] = answer or (rerr .. ": " .. partial)
end}}}):run()
"""


@pytest.fixture
def https_server():
    """An HTTPS server on 127.0.0.1 whose certificate (for localhost) no machine trusts: a test CA's."""
    import ssl

    import trustme
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class State(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"on")

        def log_message(self, *args):
            pass

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost", "127.0.0.1").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), State)
    server.daemon_threads = True  # a client that never shakes hands holds up its own thread only
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_tls_on_the_real_network(new_hub, tmp_path, https_server):
    """cosock.ssl over the worker's real socket: with verify = "none" (as LAN drivers talk to devices'
    self-signed certificates) the request goes through encrypted; with verify = "peer" a certificate
    nobody trusts is refused at the handshake."""
    from hubrt.clock import Clock

    hub = new_hub(network="real", clock=Clock(real=True))
    hub.install(make_driver(tmp_path / "tls", TLS_CLIENT, key="tls", files={"config.yml": "name: tls\npackageKey: tls\n"
                                                                                         "permissions:\n  lan: {}\n"}))
    for label, verify in (("N", "none"), ("P", "peer")):
        hub.add_device("tls", "switch", label=label, network_id=f"{verify} 127.0.0.1:{https_server}")
        hub.command(label, "switch", "on")
    deadline = time.monotonic() + 20
    while not {"N", "P"} <= set(hub.store.load("tls")) and time.monotonic() < deadline:
        hub.advance(0.02)
    saved = hub.store.load("tls")
    assert {"N", "P"} <= set(saved), [r.text for r in hub.logs]
    assert saved["N"].startswith("HTTP/1.0 200 OK") and saved["N"].endswith("\r\n\r\non"), saved
    assert saved["P"].startswith("handshake: certificate verify failed"), saved
    assert not [r.text for r in hub.logs if r.level == "error"]


MDNS_CLIENT = """
local Driver = require "st.driver"
local mdns = require "st.mdns"
Driver("finder", {discovery = function(driver)
  local answer, err = mdns.discover("_speaker._tcp", "local")
  if not answer then driver.datastore.found = {"error: " .. tostring(err)} return end
  local found = {}
  for _, f in ipairs(answer.found) do
    local txt = {}
    for _, entry in ipairs(f.txt.text) do txt[#txt + 1] = string.char(table.unpack(entry)) end
    found[#found + 1] = f.service_info.name .. " " .. f.host_info.address .. ":" .. f.host_info.port .. " "
                        .. tostring(f.host_info.name) .. " " .. table.concat(txt, ",")
  end
  driver.datastore.found = found
  driver.datastore.answers = #answer.answers
end}):run()
"""


@pytest.fixture
def mdns_responder():
    """A speaker answering mDNS questions for _speaker._tcp.local on this machine (legacy unicast: to the
    asker's port); skips where multicast is not delivered to the machine itself."""
    import dns.message
    import dns.rdatatype
    import dns.rrset

    service = "_speaker._tcp.local."
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(("", 5353))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                        socket.inet_aton("224.0.0.251") + socket.inet_aton("0.0.0.0"))
    except OSError as e:
        sock.close()
        pytest.skip(f"cannot listen for mDNS on this machine: {e}")
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data, sender = sock.recvfrom(9000)
                query = dns.message.from_wire(data)
            except Exception:
                continue
            if query.flags & 0x8000 or not any(q.name.to_text() == service for q in query.question):
                continue  # an answer (ours, looped back), or another question
            answer = dns.message.make_response(query)
            answer.answer.append(dns.rrset.from_text(service, 10, "IN", "PTR", "Kitchen." + service))
            answer.additional += [
                dns.rrset.from_text("Kitchen." + service, 10, "IN", "SRV", "0 0 8080 kitchen.local."),
                dns.rrset.from_text("Kitchen." + service, 10, "IN", "TXT", '"id=7" "model=X1"'),
                dns.rrset.from_text("kitchen.local.", 10, "IN", "A", "127.0.0.1")]
            sock.sendto(answer.to_wire(), sender)

    threading.Thread(target=serve, daemon=True).start()
    from hubrt.net.mdns import discover
    if not discover("_speaker._tcp", "local", window=1.0)["found"]:
        stop.set()
        sock.close()
        pytest.skip("this machine does not deliver multicast to itself, so mDNS discovery cannot be tried")
    yield
    stop.set()
    sock.close()


def test_a_service_type_dns_cannot_ask_for_is_an_answer_not_an_exception():
    from hubrt.net.mdns import discover
    assert discover("_bad..type", "local", window=0.1) == {
        "error": "_bad..type.local is not a service to ask for: A DNS label is empty."}


def test_mdns_discovery_on_the_real_network(new_hub, tmp_path, mdns_responder):
    from hubrt.clock import Clock

    hub = new_hub(network="real", clock=Clock(real=True))
    hub.install(make_driver(tmp_path / "finder", MDNS_CLIENT, key="finder",
                            files={"config.yml": "name: finder\npackageKey: finder\npermissions:\n  lan: {}\n"
                                                 "  discovery: {}\n"}))
    hub.discover("finder")
    saved = hub.store.load("finder")
    assert saved["found"] == ["Kitchen 127.0.0.1:8080 kitchen.local id=7,model=X1"], saved
    assert saved["answers"] == 3  # the SRV, TXT and A records, as the hub hands them over
    assert not [r.text for r in hub.logs if r.level == "error"]


def test_the_real_network_refuses_a_virtual_clock(tmp_path):
    script = tmp_path / "s.yml"
    script.write_text("- advance: 1\n")
    result = hubrt("run", str(LAN_TOUR), "--network", "real", "--clock", "virtual", "--script", str(script),
                   "--state", str(tmp_path / "s"))
    assert result.returncode != 0 and "--network real runs on the real clock" in result.stderr
    assert "Traceback" not in result.stderr


BRIDGE = ROOT / "drivers" / "lan-bridge"


def _fake_bridge(*options: str):
    """`hubrt fake-bridge` on a free port: its HTTP port, then it is stopped."""
    proc = subprocess.Popen([sys.executable, "-m", "hubrt", "fake-bridge", "--port", "0", *options], cwd=ROOT,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    line = proc.stderr.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    assert match, line + proc.stderr.read() if proc.poll() is not None else line
    yield int(match[1])
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def fake_bridge():
    yield from _fake_bridge("--no-ssdp")


@pytest.fixture
def discoverable_bridge():
    """The same, answering SSDP searches: only one test at a time may (UDP 1900 is the machine's)."""
    yield from _fake_bridge()


def _ssdp_reaches(port: int) -> bool:
    """Whether this machine delivers a multicast M-SEARCH to the fake bridge (CI machines may not)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(1.5)
        probe.sendto(b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n"
                     b"ST: urn:hubrt:device:light-bridge:1\r\n\r\n", ("239.255.255.250", 1900))
        try:
            return f":{port}/".encode() in probe.recvfrom(2048)[0]
        except OSError:
            return False


def test_the_fake_bridge_serves_the_bridge_api(fake_bridge):
    base = f"http://127.0.0.1:{fake_bridge}"
    with urllib.request.urlopen(f"{base}/lights", timeout=5) as response:
        assert [light["name"] for light in json.load(response)] == ["Hall", "Porch", "Garage"]
    stream = socket.create_connection(("127.0.0.1", fake_bridge), timeout=5)
    stream.sendall(b"GET /events HTTP/1.1\r\nHost: bridge\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += stream.recv(1024)
    with urllib.request.urlopen(urllib.request.Request(f"{base}/lights/B2/on", method="POST"), timeout=5) as response:
        assert json.load(response) == {"serial": "B2", "on": True}
    event = head.split(b"\r\n\r\n", 1)[1]
    while b"\n" not in event:
        event += stream.recv(1024)
    stream.close()
    assert event.startswith(b'data: {"serial": "B2", "on": true}\n')


def test_lan_bridge_finds_and_drives_the_fake_bridge_on_the_real_network(tmp_path, discoverable_bridge):
    if not _ssdp_reaches(discoverable_bridge):
        pytest.skip("this machine does not deliver multicast to itself, so SSDP discovery cannot be tried")
    script = tmp_path / "real.yml"
    script.write_text("""
- discover
- advance: 3
- command: {device: Hall, capability: switch, command: "on"}
- advance: 0.5
- assert: {device: Hall, state: switch.switch, equals: "on"}
- restart: graceful
- command: {device: Porch, capability: switch, command: "on"}
- advance: 0.5
- assert: {device: Porch, state: switch.switch, equals: "on"}
- assert: {datastore: last_discovery, equals: 1}
""")
    result = hubrt("run", str(BRIDGE), "--network", "real", "--script", str(script), "--state", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    assert "ok: datastore last_discovery == 1" in result.stdout + result.stderr


@pytest.mark.parametrize("target, answers", [("ssdp:all", 1), ("urn:Belkin:device:controllee:1", 1),
                                             ("urn:Belkin:device:*", 1), ("urn:Belkin:service:*", 0),
                                             ("urn:other:device:lamp:1", 0)])
def test_ssdp_answers_match_the_search_target(target, answers):
    """A host answers an M-SEARCH for everything, for its own target, or for a vendor wildcard it falls under."""
    from hubrt.net.simulated import SimulatedLan
    got = []
    lan = SimulatedLan(lambda driver, event: got.append(event))
    lan.add_host("192.168.1.90", ssdp={"ST": "urn:Belkin:device:controllee:1", "LOCATION": "http://192.168.1.90/"})
    search = f"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: {target}\r\n\r\n"
    assert lan.call("d", {"call": "sendto", "sock": 1, "host": "239.255.255.250", "port": 1900, "data": search}) \
        == {"ok": True}
    assert len(got) == answers


def http_exchange(routes: dict, *chunks: bytes) -> tuple[bytes, bool, list[dict]]:
    """Bytes sent to the simulated LAN's HTTP server, as a driver's socket sends them: what came
    back, whether the server closed the connection, and what it recorded."""
    from hubrt.net.simulated import SimulatedLan

    got = []
    lan = SimulatedLan(lambda driver, event: got.append(event))
    lan.add_host("192.168.1.50", http={"port": 80, "routes": routes})
    assert lan.call("d", {"call": "connect", "sock": 1, "host": "192.168.1.50", "port": 80})["ok"]
    for chunk in chunks:
        assert lan.call("d", {"call": "send", "sock": 1, "data": chunk.decode("latin-1")}) == {"ok": True}
    data = "".join(e.get("data", "") for e in got).encode("latin-1")
    return data, any(e.get("closed") for e in got), lan.requests("192.168.1.50")


def test_the_simulated_http_server_reads_requests_as_a_server_does():
    routes = {"GET /a": {"body": "A"}, "/b": lambda request: {"body": "B " + request["body"]}}
    # two requests in one write, one of them split across two writes, a chunked body
    data, closed, seen = http_exchange(
        routes, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHOST: x\r\nTransfer-Encoding: chunked\r\n\r\n3",
        b"\r\nabc\r\n0\r\n\r\n")
    assert data == (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"
                    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nB abc") and not closed
    assert [(r["method"], r["path"], r["headers"].get("host"), r["body"]) for r in seen] == [
        ("GET", "/a", "x", ""), ("POST", "/b", "x", "abc")]
    # a client that asks to close is answered so, and the connection ends
    data, closed, _ = http_exchange(routes, b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert data.endswith(b"Connection: close\r\n\r\nA") and closed


@pytest.mark.parametrize("garbage", [b"NOT HTTP\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                                     b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"])
def test_the_simulated_http_server_answers_garbage_with_400_and_says_so(garbage):
    data, closed, seen = http_exchange({"/": {"body": "hi"}}, garbage)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and closed
    assert seen[-1]["error"].startswith("not an HTTP request: "), seen


def test_a_route_whose_response_cannot_be_sent_is_a_server_error_not_a_traceback():
    data, closed, seen = http_exchange({"/": {"body": "hi", "headers": {"X-Bad": "a\r\nInjected: yes"}}},
                                       b"GET / HTTP/1.1\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") and b"Injected" not in data
    assert "cannot be sent" in seen[-1]["error"]


def test_a_connection_a_worker_made_from_a_stale_directory_fails_at_its_socket():
    """A worker answers a connect to a host the LAN's directory lists itself and tells the hub;
    should the LAN have changed meanwhile, the hub's answer reaches the socket as a failure."""
    from hubrt.net.hub_side import HubNetwork

    posted, deferred = [], []
    net = HubNetwork("simulated", lambda driver, events: posted.append((driver, events)), deferred.append)
    net.lan.add_host("192.168.1.50", http={"port": 80, "routes": {}})
    assert net.lan.directory()["hosts"] == {"192.168.1.50": ["192.168.1.50", [80]]}
    net.lan.set_fault("192.168.1.50", "refuse")
    assert net.lan.directory()["hosts"] == {}
    net.connected("d", {"sock": 7, "host": "192.168.1.50", "port": 80})
    for action in deferred:  # (the hub runs them once the current dispatch is over)
        action()
    assert posted == [("d", [{"sock": 7, "error": "connection refused"}])]


def test_a_worker_hears_of_every_change_to_the_lans_directory_before_its_next_dispatch():
    from hubrt.net.hub_side import HubNetwork

    class Worker:
        lan_version = -1

        def __init__(self):
            self.told = []

        def notify(self, message):
            self.told.append(message["directory"])

    net, worker = HubNetwork("simulated", lambda *a: None, lambda action: None), Worker()
    net.tell(worker)
    net.tell(worker)  # nothing new
    net.lan.add_host("192.168.1.50", name="lamp", http={"port": 8080, "routes": {}})
    net.tell(worker)
    net.set_hub_ip("192.168.1.3")  # the local address of the connections it makes itself
    net.tell(worker)
    net.lan.move_host("192.168.1.50", "192.168.1.51")
    net.tell(worker)
    assert [(d["hub"], d["hosts"]) for d in worker.told] == [
        ("192.168.1.2", {}),
        ("192.168.1.2", {"192.168.1.50": ["192.168.1.50", [8080]], "lamp": ["192.168.1.50", [8080]]}),
        ("192.168.1.3", {"192.168.1.50": ["192.168.1.50", [8080]], "lamp": ["192.168.1.50", [8080]]}),
        ("192.168.1.3", {"192.168.1.51": ["192.168.1.51", [8080]], "lamp": ["192.168.1.51", [8080]]}),
    ]
