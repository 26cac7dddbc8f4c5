"""An HTTP/1.1 server as a peer on the simulated LAN (the parsing is llhttp's, through httptools:
a request costs a few microseconds, where a pure-Python parser cost more than everything else a
driver's request does on the simulated LAN).

Routes map "METHOD /path" (or "/path" for any method) to a response: a dict
{"status": 200, "headers": {...}, "body": "..."} given in a scenario file,
or a function of the request (a Lua function in a test) returning one. A
response with "stream": true is an event stream (server-sent events): its
head is sent and the connection stays open; `push` sends text down every open
stream of a path, `drop_streams` closes them. A request the server cannot
parse gets 400 and the connection closed, as a real server would answer it. SUBSCRIBE and
UNSUBSCRIBE (UPnP eventing) are answered as devices answer them, unless a route says otherwise.

A response with "websocket": true makes the route a WebSocket endpoint (RFC 6455; the framing is
wsproto's): an Upgrade request is switched to a WebSocket, whose messages from the driver are
kept with the requests (and sent back when "echo": true); `push` sends a text message down
every WebSocket of the path, `close_websockets` closes them with a close frame.
"""

from __future__ import annotations

import functools
import itertools
import re
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import urlsplit

import httptools

Route = dict | Callable[[dict], dict]


def _websocket(conn: Any) -> dict | None:
    """The WebSocket state of a connection that was switched to one (else None)."""
    return conn.state.get("ws") if conn.state else None


@functools.lru_cache(maxsize=None)
def _reason(status: int) -> bytes:
    """The reason phrase a server sends with a status ("OK", "Not Found"; none for an unknown one)."""
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class _RequestReader:
    """httptools' parser, and the requests it has read whole (method, target, headers with their
    names in lower case, body, whether the connection stays open)."""

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._done: list[dict] = []
        self._reset()

    def _reset(self) -> None:
        self._target, self._headers, self._body = b"", {}, []

    def feed(self, data: bytes) -> bytes | None:
        """Reads `data`; what follows a request to switch protocols (Upgrade), or None."""
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            return data[e.args[0]:]
        return None

    def take(self) -> list[dict]:
        done, self._done = self._done, []
        return done

    # httptools' callbacks
    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1").strip()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        self._done.append({"method": parser.get_method().decode("latin-1"), "target": self._target.decode("latin-1"),
                           "headers": self._headers, "body": b"".join(self._body).decode("latin-1"),
                           "keep_alive": parser.should_keep_alive()})
        self._reset()


class HttpPeer:
    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[dict] = []  # what drivers asked, oldest first
        self.streams: list[tuple[str, Any]] = []  # (path, connection) of open event streams and WebSockets
        self.subscribers: list[tuple[str, str]] = []  # (CALLBACK, SID) of UPnP event subscriptions
        self._sids = itertools.count(1)

    def push(self, path: str, text: str, raw: bool = False) -> int:
        """Sends text down every open stream of `path` (a message on a WebSocket, unless `raw`: then
        the bytes as they are, e.g. a broken frame); how many streams got it."""
        self.streams = [(p, conn) for p, conn in self.streams if not conn.closed]
        targets = [conn for p, conn in self.streams if p == path]
        for conn in targets:
            ws = _websocket(conn)
            if ws is not None and not raw:
                conn.send(bytes(ws["frames"].send_data(text)))
            else:
                conn.send(text.encode("latin-1") if raw else text.encode())
        return len(targets)

    def close_websockets(self, code: int, reason: str) -> int:
        """Closes every open WebSocket with a close frame (the connection ends once the driver
        answers it); how many."""
        count = 0
        for _, conn in self.streams:
            ws = _websocket(conn)
            if ws is not None and not conn.closed and not ws["closing"]:
                ws["closing"] = True
                conn.send(bytes(ws["frames"].close(code, reason)))
                count += 1
        return count

    def _subscription(self, request: dict) -> dict:
        """UPnP eventing, as devices answer it: SUBSCRIBE with a CALLBACK gets a SID (SimulatedLan.notify
        later calls back); UNSUBSCRIBE with the SID ends it."""
        headers = {k.lower(): v for k, v in request["headers"].items()}
        if request["method"] == "UNSUBSCRIBE":
            self.subscribers = [(c, sid) for c, sid in self.subscribers if sid != headers.get("sid")]
            return {"status": 200}
        if "sid" in headers:  # a renewal
            return {"status": 200, "headers": {"SID": headers["sid"], "TIMEOUT": headers.get("timeout", "Second-1800")}}
        if "callback" not in headers:
            return {"status": 412, "body": "a SUBSCRIBE needs a CALLBACK"}
        sid = f"uuid:sub-{next(self._sids)}"
        self.subscribers.append((headers["callback"], sid))
        return {"status": 200, "headers": {"SID": sid, "TIMEOUT": headers.get("timeout", "Second-1800")}}

    def drop_streams(self) -> None:
        for _, conn in self.streams:
            conn.close()
        self.streams = []

    def connected(self, conn: Any) -> None:
        conn.state = {"reader": _RequestReader()}

    def closed(self, conn: Any) -> None:
        conn.state = None

    def received(self, conn: Any, data: bytes) -> None:
        state = conn.state
        if state is not None and "ws" in state:
            return self._ws_received(conn, state["ws"], data)
        if state is None or state.get("streaming"):
            return  # a client does not talk on an event stream
        reader: _RequestReader = state["reader"]
        try:
            upgraded = reader.feed(data)
        except httptools.HttpParserError as e:
            conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            conn.close()
            self.requests.append({"error": f"not an HTTP request: {e}"})
            return
        for request in reader.take():
            self._answer(conn, request)
            if "ws" in state or state.get("streaming") or conn.closed:
                break
            if not request["keep_alive"]:
                conn.close()
                return
        if upgraded is not None:
            if "ws" in state:  # what came after the Upgrade request is WebSocket frames
                return self._ws_received(conn, state["ws"], upgraded) if upgraded else None
            if not conn.closed:  # answered as an ordinary request: HTTP goes on
                state["reader"] = _RequestReader()
                if upgraded:
                    self.received(conn, upgraded)

    def _answer(self, conn: Any, request: dict) -> None:
        target, method = request["target"], request["method"]
        seen = {"method": method, "path": target, "headers": request["headers"], "body": request["body"]}
        self.requests.append(seen)
        path = target.partition("?")[0].partition("#")[0] if target.startswith("/") else urlsplit(target).path
        route = next((self.routes[k] for k in (f"{method} {target}", f"{method} {path}", target, path)
                      if k in self.routes), None)
        if route is None and method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            route = self._subscription
        response = {"status": 404, "body": "not found"} if route is None else (
            route(seen) if callable(route) else route)
        status = int(response.get("status", 200))
        if response.get("websocket"):
            return self._upgrade(conn, seen, path, response)
        if response.get("stream"):  # the head only, and the connection stays open for `push`
            headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                       **(response.get("headers") or {})}
            head = f"HTTP/1.1 {status} {_reason(status).decode()}\r\n"
            conn.send((head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode("latin-1"))
            conn.state["streaming"] = True
            self.streams.append((path, conn))
            return
        payload = response.get("body", "")
        payload = payload.encode() if isinstance(payload, str) else bytes(payload)
        headers = [(str(k), str(v)) for k, v in (response.get("headers") or {}).items()]
        bad = next((f"{k}: {v}" for k, v in headers if not _HEADER_NAME.fullmatch(k) or _CONTROL.search(v)),
                   None) if headers else None
        if bad is not None or not 100 <= status <= 999:  # (a route's own mistake: the driver sees a server error)
            self.requests.append({"error": f"the route's response cannot be sent: "
                                           f"{'status ' + str(status) if bad is None else repr(bad)}"})
            status, headers, payload = 500, [], b""
        if not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(len(payload))))
        if not request["keep_alive"]:
            headers.append(("Connection", "close"))
        head = f"HTTP/1.1 {status} {_reason(status).decode()}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        conn.send(head.encode("latin-1", "replace") + b"\r\n" + payload)

    def _upgrade(self, conn: Any, request: dict, path: str, route: dict) -> None:
        """A WebSocket endpoint's answer: 101 and frames from now on, or 426 to anything but a
        WebSocket handshake."""
        from wsproto.frame_protocol import FrameProtocol
        from wsproto.utilities import generate_accept_token

        headers = {k.lower(): v for k, v in request["headers"].items()}
        key = headers.get("sec-websocket-key")
        if (request["method"] != "GET" or headers.get("upgrade", "").lower() != "websocket"
                or not key or headers.get("sec-websocket-version") != "13"):
            conn.send(b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n"
                      b"Connection: close\r\n\r\n")
            conn.close()
            return
        extra = "".join(f"{k}: {v}\r\n" for k, v in (route.get("headers") or {}).items())
        conn.send((f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Accept: {generate_accept_token(key.encode()).decode()}\r\n{extra}\r\n")
                  .encode("latin-1"))
        conn.state["ws"] = {"path": path, "frames": FrameProtocol(client=False, extensions=[]),
                            "echo": bool(route.get("echo")), "closing": False}
        self.streams.append((path, conn))

    def _ws_received(self, conn: Any, ws: dict, data: bytes) -> None:
        """Frames from the driver: messages are kept (and echoed), pings answered, a close
        answered and the connection ended; a broken frame closes it with the code for it."""
        from wsproto.frame_protocol import Opcode, ParseFailed

        frames = ws["frames"]
        frames.receive_bytes(data)
        try:
            for frame in frames.received_frames():
                if frame.opcode is Opcode.PING:
                    conn.send(bytes(frames.pong(frame.payload)))
                elif frame.opcode is Opcode.CLOSE:
                    code, reason = frame.payload
                    if not ws["closing"]:
                        conn.send(bytes(frames.close(code, reason)))
                    self.requests.append({"websocket": ws["path"], "close": code, "reason": reason})
                    conn.close()
                    return
                elif frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION):
                    ws.setdefault("parts", []).append(frame.payload)
                    if frame.opcode is not Opcode.CONTINUATION:
                        ws["kind"] = "text" if frame.opcode is Opcode.TEXT else "binary"
                    if frame.message_finished:
                        parts, ws["parts"] = ws["parts"], []
                        text = "".join(parts) if ws["kind"] == "text" else b"".join(parts).decode("latin-1")
                        self.requests.append({"websocket": ws["path"], ws["kind"]: text})
                        if ws["echo"] and not ws["closing"]:
                            payload = text if ws["kind"] == "text" else text.encode("latin-1")
                            conn.send(bytes(frames.send_data(payload)))
        except ParseFailed as e:
            self.requests.append({"websocket": ws["path"], "error": f"a broken frame: {e}"})
            conn.send(bytes(frames.close(e.code, str(e)[:100])))
            conn.close()
