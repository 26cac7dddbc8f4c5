"""A light bridge on this machine, for `hubrt run drivers/lan-bridge --network real`.

It speaks the protocol drivers/lan-bridge/src/bridge_api.lua describes: an answer to an SSDP
M-SEARCH for its search target (UDP 1900, multicast group 239.255.255.250), and HTTP with
JSON bodies -- GET /lights, GET /lights/<serial>, POST /lights/<serial>/on|off -- and
GET /events, a server-sent event stream of every change. Start it with `hubrt fake-bridge`.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

SEARCH_TARGET = "urn:hubrt:device:light-bridge:1"
SSDP_GROUP = ("239.255.255.250", 1900)
LIGHTS = [("A1", "Hall"), ("B2", "Porch"), ("C3", "Garage")]


class FakeBridge:
    def __init__(self, host: str = "127.0.0.1", port: int = 8080, ssdp: bool = True,
                 log: Callable[[str], None] = print) -> None:
        self.lights = {serial: {"serial": serial, "name": name, "on": False} for serial, name in LIGHTS}
        self.log = log
        self._streams: list = []  # the wfile of each open event stream
        self._lock = threading.Lock()
        self.http = ThreadingHTTPServer((host, port), self._handler())
        self.http.daemon_threads = True
        self.host, self.port = self.http.server_address[0], self.http.server_address[1]
        self.ssdp = self._ssdp_socket() if ssdp else None

    # -- HTTP --------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/lights":
                    return self._json(list(bridge.lights.values()))
                if self.path == "/events":
                    return self._stream()
                light = bridge.lights.get(self.path.removeprefix("/lights/"))
                return self._json({"serial": light["serial"], "on": light["on"]}) if light else self._json(None, 404)

            def do_POST(self) -> None:
                match = re.fullmatch(r"/lights/(\w+)/(on|off)", self.path)
                light = bridge.lights.get(match[1]) if match else None
                if light is None:
                    return self._json(None, 404)
                bridge.switch(light["serial"], match[2] == "on")
                return self._json({"serial": light["serial"], "on": light["on"]})

            def _json(self, value: object, status: int = 200) -> None:
                body = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self) -> None:
                with bridge._lock:  # registered before a change can be sent, which takes the same lock
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-cache")
                    self.end_headers()
                    self.wfile.flush()
                    bridge._streams.append(self.wfile)
                self.close_connection = False
                threading.Event().wait()  # the stream stays open until the bridge stops

            def log_message(self, format: str, *args: object) -> None:
                bridge.log(f"{self.address_string()} {format % args}")

        return Handler

    def switch(self, serial: str, on: bool) -> None:
        """A light changes (by a request, or at the bridge itself): every event stream hears of it."""
        self.lights[serial]["on"] = on
        line = f"data: {json.dumps({'serial': serial, 'on': on})}\n".encode()
        with self._lock:
            for stream in list(self._streams):
                try:
                    stream.write(line)
                    stream.flush()
                except OSError:
                    self._streams.remove(stream)

    # -- SSDP ----------------------------------------------------------------------------

    def _ssdp_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", SSDP_GROUP[1]))
        membership = struct.pack("4s4s", socket.inet_aton(SSDP_GROUP[0]), socket.inet_aton("0.0.0.0"))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
        return sock

    def _answer_searches(self) -> None:
        while True:
            try:
                data, sender = self.ssdp.recvfrom(2048)
            except OSError:
                return
            if data.startswith(b"M-SEARCH") and (SEARCH_TARGET.encode() in data or b"ssdp:all" in data):
                self.ssdp.sendto((f"HTTP/1.1 200 OK\r\nST: {SEARCH_TARGET}\r\nUSN: uuid:fake-bridge-{self.port}\r\n"
                                  f"LOCATION: http://{self.host}:{self.port}/\r\nCACHE-CONTROL: max-age=1800\r\n\r\n"
                                  ).encode(), sender)
                self.log(f"answered an SSDP search from {sender[0]}:{sender[1]}")

    def serve(self) -> None:
        if self.ssdp is not None:
            threading.Thread(target=self._answer_searches, daemon=True).start()
        self.http.serve_forever()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        if self.ssdp is not None:
            self.ssdp.close()
