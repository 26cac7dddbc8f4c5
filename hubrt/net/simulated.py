"""The simulated LAN: hosts with addresses, the peers on them, faults on demand.

It belongs to the hub, so every driver sees the same LAN and scenario steps and
tests change it. Nothing leaves the process, and it runs on the hub's clock: a
peer answers at once (in hub time), a host that drops packets never answers
(the driver's own socket timeout ends the wait, on the hub's clock).

A driver's socket calls arrive as `call(driver, message)` and are answered at
once; what peers send back is handed to `deliver(driver, event)`, which the
hub turns into a `net` dispatch after the current one.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from hubrt.inputs import InputError

HUB_IP = "192.168.1.2"
SSDP_GROUP = ("239.255.255.250", 1900)
# refuse: connections refused; timeout: nothing answers (packets dropped); reset: a connection is reset
# when a request arrives; partial: half of each answer arrives, then nothing
FAULTS = ("refuse", "timeout", "reset", "partial")

Deliver = Callable[[str, dict], None]  # (driver, an event for one of its sockets)


class NetError(InputError):
    """A network call that fails as the real one would (the message is what the driver gets), or a
    test or scenario asking for a host that is not there."""


class Connection:
    """One TCP connection between a driver's socket and a peer on `host` (the driver connected
    out, or the host connected to a driver's listening socket); the peer's end of it."""

    def __init__(self, lan: SimulatedLan, driver: str, sock: int, host: Host, port: int, peer: Any) -> None:
        """`port`: the host's port the driver connected to, or the hub's port the host connected to."""
        self.lan, self.driver, self.sock, self.host, self.port, self.peer = lan, driver, sock, host, port, peer
        self.closed = False
        self.state: Any = None  # the peer's own per-connection state

    def send(self, data: bytes) -> None:
        """Bytes from the peer to the driver."""
        if self.closed or self.host.fault == "timeout":
            return
        if self.host.fault == "partial":
            data = data[:max(1, len(data) // 2)]
            self.closed = True  # and nothing more arrives
        self.lan.deliver(self.driver, {"sock": self.sock, "data": data.decode("latin-1")})

    def close(self) -> None:
        """The peer closes its end: the driver reads what was sent, then "closed"."""
        if not self.closed:
            self.closed = True
            self.lan.deliver(self.driver, {"sock": self.sock, "closed": True})

    def reset(self) -> None:
        if not self.closed:
            self.closed = True
            self.lan.deliver(self.driver, {"sock": self.sock, "error": "connection reset by peer"})


@dataclass
class Host:
    ip: str
    name: str | None = None
    tcp: dict[int, Any] = field(default_factory=dict)  # port -> peer (connected / received / closed)
    ssdp: dict[str, str] | None = None  # the headers of its answer to an M-SEARCH
    mdns: list[dict] = field(default_factory=list)  # services: {service_type, domain, name, port, txt}
    fault: str | None = None


class Caller:
    """A host's side of a connection it made to a driver's listening socket: it keeps what the
    driver answered, and closes once an answer came."""

    def __init__(self) -> None:
        self.answers: list[bytes] = []

    def connected(self, conn: Connection) -> None:
        pass

    def received(self, conn: Connection, data: bytes) -> None:
        self.answers.append(data)
        conn.close()

    def closed(self, conn: Connection) -> None:
        pass


@dataclass
class Sent:
    """What a driver sent, as a test or a scenario sees it."""

    driver: str
    host: str
    port: int
    data: bytes


class SimulatedLan:
    def __init__(self, deliver: Deliver) -> None:
        self.deliver = deliver
        self.hosts: dict[str, Host] = {}
        self.sent: list[Sent] = []
        self._connections: dict[tuple[str, int], Connection] = {}
        self._udp_ports: dict[tuple[str, int], int] = {}  # (driver, socket) -> its local port
        self._listeners: dict[int, tuple[str, int]] = {}  # a port of the hub -> (driver, listening socket)
        self._accepted = itertools.count(1_000_000)  # ids of accepted connections (a driver's count up from 1)
        self._ports = itertools.count(49152)
        self.hub_ip = HUB_IP  # the hub's own address on this LAN
        self.version = 0  # counts the changes to which host answers where (see `directory`)

    # -- what tests and scenarios do -----------------------------------------

    def add_host(self, ip: str, name: str | None = None, http: dict | list[dict] | None = None,
                 ssdp: dict[str, str] | None = None, mdns: list[dict] | None = None) -> Host:
        """A host (replacing one at that address); `http`: {"port": 80, "routes": {...}} (see HttpPeer),
        or a list of them for a host that serves on several ports; `mdns`: the services it advertises."""
        host = Host(ip, name)
        if http is not None:
            from hubrt.net.http import HttpPeer  # (its parser is loaded only where a LAN has an HTTP server)

            for server in http if isinstance(http, list) else [http]:
                host.tcp[int(server.get("port", 80))] = HttpPeer(server.get("routes") or {})
        host.ssdp = ssdp
        host.mdns = list(mdns or [])
        self.hosts[ip] = host
        self.version += 1
        return host

    def remove_host(self, ip: str) -> None:
        host = self._host(ip)
        del self.hosts[ip]
        self.version += 1
        for conn in [c for c in self._connections.values() if c.host is host]:
            conn.reset()

    def move_host(self, ip: str, new_ip: str) -> None:
        """The host gets a new address (as after a DHCP lease): connections to the old one break."""
        host = self._host(ip)
        self.remove_host(ip)
        host.ip = new_ip
        if host.ssdp:  # what it advertises (LOCATION) names its new address
            host.ssdp = {k: v.replace(ip, new_ip) for k, v in host.ssdp.items()}
        self.hosts[new_ip] = host
        self.version += 1

    def set_fault(self, ip: str, fault: str | None) -> None:
        if fault is not None and fault not in FAULTS:
            raise NetError(f"unknown fault {fault!r}; faults: {', '.join(FAULTS)}")
        self._host(ip).fault = fault
        self.version += 1

    def set_hub_ip(self, ip: str) -> None:
        """The hub's own address changes (the local address of connections workers make themselves)."""
        self.hub_ip = ip
        self.version += 1

    def directory(self) -> dict:
        """Who takes a TCP connection at once, as a driver's worker may answer its connects itself
        (one round trip to the hub fewer per connection): {address or name: [ip, [ports]]} of the
        hosts without a fault, and the hub's own address. Anything else is asked of the hub."""
        hosts: dict[str, list] = {}
        for host in self.hosts.values():
            if host.fault is None and host.tcp:
                hosts[host.ip] = [host.ip, sorted(host.tcp)]
                if host.name:
                    hosts.setdefault(host.name, hosts[host.ip])
        return {"hub": self.hub_ip, "hosts": hosts}

    def push(self, ip: str, path: str, text: str, raw: bool = False) -> int:
        """Sends text down the host's open event streams and WebSockets of `path` (`raw`: the bytes
        as they are, not a WebSocket message); how many got it."""
        return sum(peer.push(path, text, raw) for peer in _http_peers(self._host(ip)))

    def close_websockets(self, ip: str, code: int = 1000, reason: str = "") -> int:
        """The host closes its open WebSockets with a close frame; how many."""
        if not 1000 <= code <= 4999 or code in (1004, 1005, 1006, 1015):
            raise NetError(f"{code} is not a close code a server may send (1000-4999, not 1004-1006 or 1015)")
        return sum(peer.close_websockets(code, reason) for peer in _http_peers(self._host(ip)))

    def drop_streams(self, ip: str) -> None:
        """The host closes its open event streams (as when it reboots)."""
        for peer in _http_peers(self._host(ip)):
            peer.drop_streams()

    def requests(self, ip: str | None = None) -> list[dict]:
        """The HTTP requests the peers received, oldest first."""
        return [r for h in self.hosts.values() if ip is None or h.ip == ip for peer in _http_peers(h)
                for r in peer.requests]

    def forget(self, driver: str) -> None:
        """A driver's sockets are gone (it crashed or stopped): its connections close."""
        for key in [k for k in self._connections if k[0] == driver]:
            conn = self._connections.pop(key)
            conn.closed = True
            conn.peer.closed(conn)
        for key in [k for k in self._udp_ports if k[0] == driver]:
            del self._udp_ports[key]
        for port in [p for p, owner in self._listeners.items() if owner[0] == driver]:
            del self._listeners[port]

    def _host(self, ip: str) -> Host:
        host = self.hosts.get(ip)
        if host is None:
            raise NetError(f"no host {ip} on the simulated LAN")
        return host

    def _resolve(self, name: str) -> Host | None:
        return self.hosts.get(name) or next((h for h in self.hosts.values() if h.name == name), None)

    # -- what drivers do ---------------------------------------------------------

    def call(self, driver: str, m: dict) -> dict:
        """A driver's socket call; its answer ({"error": text} when it fails)."""
        handler = _CALLS.get(m.get("call"))
        if handler is None:
            return {"error": f"unknown network call {m.get('call')!r}"}
        try:
            return handler(self, driver, m)
        except NetError as e:
            return {"error": str(e)}

    def _connect(self, driver: str, m: dict) -> dict:
        host, port = self._resolve(m["host"]), int(m["port"])
        if host is None or host.fault == "timeout":
            return {"pending": True}  # nothing answers: the driver's timeout ends the wait
        peer = host.tcp.get(port)
        if peer is None or host.fault == "refuse":
            raise NetError("connection refused")
        conn = Connection(self, driver, m["sock"], host, port, peer)
        self._connections[(driver, m["sock"])] = conn
        peer.connected(conn)
        return {"ok": True, "peer": [host.ip, port], "local": [self.hub_ip, next(self._ports)]}

    def _send(self, driver: str, m: dict) -> dict:
        conn = self._connections.get((driver, m["sock"]))
        if conn is None or conn.closed:
            raise NetError("closed")
        data = m["data"].encode("latin-1")
        self.sent.append(Sent(driver, conn.host.ip, conn.port, data))
        if conn.host.fault == "timeout":
            return {"ok": True}
        if conn.host.fault == "reset":
            conn.reset()
            return {"ok": True}
        conn.peer.received(conn, data)
        return {"ok": True}

    def _close(self, driver: str, m: dict) -> dict:
        conn = self._connections.pop((driver, m["sock"]), None)
        if conn is not None and not conn.closed:
            conn.closed = True
            conn.peer.closed(conn)
        self._udp_ports.pop((driver, m["sock"]), None)
        for port in [p for p, owner in self._listeners.items() if owner == (driver, m["sock"])]:
            del self._listeners[port]
        return {"ok": True}

    def _bind(self, driver: str, m: dict) -> dict:
        port = int(m.get("port") or 0) or next(self._ports)
        self._udp_ports[(driver, m["sock"])] = port
        return {"ok": True, "local": [self.hub_ip, port]}

    def _sendto(self, driver: str, m: dict) -> dict:
        key = (driver, m["sock"])
        if key not in self._udp_ports:
            self._bind(driver, m)
        data, target = m["data"].encode("latin-1"), (m["host"], int(m["port"]))
        self.sent.append(Sent(driver, target[0], target[1], data))
        if target == SSDP_GROUP and data.startswith(b"M-SEARCH"):
            for host in list(self.hosts.values()):
                if host.ssdp is not None and host.fault is None and _ssdp_matches(data, host.ssdp):
                    reply = "HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in host.ssdp.items()) + "\r\n"
                    self.deliver(driver, {"sock": m["sock"], "data": reply, "from": [host.ip, SSDP_GROUP[1]]})
        return {"ok": True}

    def _listen(self, driver: str, m: dict) -> dict:
        port = int(m.get("port") or 0) or next(self._ports)
        if port in self._listeners:
            raise NetError("address already in use")
        self._listeners[port] = (driver, m["sock"])
        return {"ok": True, "local": [self.hub_ip, port]}

    def _setpeer(self, driver: str, m: dict) -> dict:
        port = self._udp_ports.get((driver, m["sock"])) or self._bind(driver, m)["local"][1]
        return {"ok": True, "local": [self.hub_ip, port]}

    def call_driver(self, host: Host, port: int, data: bytes) -> Caller | None:
        """The host connects to a port of the hub and sends `data`: the driver listening there accepts
        the connection (a `Caller` keeps its answer); None when nothing listens there."""
        owner = self._listeners.get(port)
        if owner is None or host.fault is not None:
            return None
        driver, listener = owner
        caller = Caller()
        conn = Connection(self, driver, next(self._accepted), host, port, caller)
        self._connections[(driver, conn.sock)] = conn
        self.deliver(driver, {"sock": listener, "accepted": conn.sock, "peer": [host.ip, next(self._ports)],
                              "local": [self.hub_ip, port]})
        conn.send(data)
        return caller

    def notify(self, ip: str, body: str) -> int:
        """The host sends a UPnP event (NOTIFY with `body`) to every driver subscribed to it; how many."""
        host = self._host(ip)
        sent = 0
        for peer in _http_peers(host):
            for callback, sid in peer.subscribers:
                target = _callback_target(callback)
                if target is None or target[0] != self.hub_ip:
                    continue
                request = (f"NOTIFY {target[2]} HTTP/1.1\r\nHOST: {target[0]}:{target[1]}\r\n"
                           f"CONTENT-TYPE: text/xml; charset=\"utf-8\"\r\nNT: upnp:event\r\nNTS: upnp:propchange\r\n"
                           f"SID: {sid}\r\nSEQ: 0\r\nCONTENT-LENGTH: {len(body.encode())}\r\n\r\n{body}")
                if self.call_driver(host, target[1], request.encode()) is not None:
                    sent += 1
        return sent

    def _mdns(self, driver: str, m: dict) -> dict:
        """st.mdns.discover (the service type comes as `host`, the domain as `data`), answered in the
        hub's shape: `found` (each TXT entry as a list of byte values) and the raw `answers` records."""
        wanted, domain = m.get("host"), m.get("data") or "local"
        found, answers = [], []
        for host in self.hosts.values():
            for service in host.mdns if host.fault is None else ():
                if service.get("service_type") != wanted or service.get("domain", "local") != domain:
                    continue
                name = str(service.get("name", host.name or host.ip))
                hostname, srvname = f"{host.name or host.ip}.{domain}", f"{name}.{wanted}.{domain}"
                port, txt = int(service.get("port", 0)), [str(t) for t in service.get("txt", [])]
                found.append({"service_info": {"name": name, "service_type": wanted, "domain": domain},
                              "host_info": {"address": host.ip, "port": port, "name": hostname},
                              "txt": {"text": [list(t.encode()) for t in txt]}})
                answers += [{"name": srvname, "kind": {"SrvRecord": {"target": hostname, "port": port}}},
                            {"name": hostname, "kind": {"ARecord": {"ipv4": host.ip}}},
                            {"name": srvname, "kind": {"TxtRecord": {"text": txt}}}]
        return {"found": found, "answers": answers}

    def _resolve_call(self, driver: str, m: dict) -> dict:
        host = self._resolve(m["host"])
        if host is None:
            raise NetError("host not found")
        return {"ip": host.ip}


def _http_peers(host: Host) -> list:
    """The host's HTTP servers (hubrt.net.http.HttpPeer)."""
    return [peer for peer in host.tcp.values() if hasattr(peer, "routes")]


def _callback_target(callback: str) -> tuple[str, int, str] | None:
    """(ip, port, path) of a UPnP CALLBACK header: <http://192.168.1.2:49152/path>."""
    match = re.match(r"<?http://([\d.]+):(\d+)(/[^>]*)?>?", callback.strip())
    return (match[1], int(match[2]), match[3] or "/") if match else None


def _ssdp_matches(search: bytes, headers: dict[str, str]) -> bool:
    """An M-SEARCH for ssdp:all, for the host's own search target, or for a wildcard target it falls under."""
    wanted = next((line.split(b":", 1)[1].strip() for line in search.split(b"\r\n")
                   if line.lower().startswith(b"st:")), b"ssdp:all")
    own = next((v for k, v in headers.items() if k.lower() == "st"), None)
    if wanted == b"ssdp:all" or own is None:
        return wanted == b"ssdp:all"
    if wanted.endswith(b"*"):  # a vendor's wildcard search target, as some devices answer them
        return own.encode().startswith(wanted[:-1])
    return wanted == own.encode()


_CALLS: dict[str, Callable[[SimulatedLan, str, dict], dict]] = {
    "tls": lambda lan, driver, m: {"ok": True},  # peers on the simulated LAN speak in clear
    "connect": SimulatedLan._connect,
    "send": SimulatedLan._send,
    "close": SimulatedLan._close,
    "bind": SimulatedLan._bind,
    "sendto": SimulatedLan._sendto,
    "resolve": SimulatedLan._resolve_call,
    "mdns": SimulatedLan._mdns,
    "listen": SimulatedLan._listen,
    "setpeer": SimulatedLan._setpeer,
}
