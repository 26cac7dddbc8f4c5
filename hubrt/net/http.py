"""An HTTP/1.1 server as a peer on the simulated LAN (the parsing is h11's).

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

import itertools
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import urlsplit

import h11

Route = dict | Callable[[dict], dict]


def _websocket(conn: Any) -> dict | None:
    """The WebSocket state of a connection that was switched to one (else None)."""
    return conn.state.get("ws") if conn.state else None


def _reason(status: int) -> bytes:
    """The reason phrase a server sends with a status ("OK", "Not Found"; none for an unknown one)."""
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


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
        conn.state = {"h11": h11.Connection(h11.SERVER), "request": None, "body": b""}

    def closed(self, conn: Any) -> None:
        conn.state = None

    def received(self, conn: Any, data: bytes) -> None:
        state = conn.state
        if state is not None and "ws" in state:
            return self._ws_received(conn, state["ws"], data)
        if state is None or state.get("streaming"):
            return  # a client does not talk on an event stream
        parser: h11.Connection = state["h11"]
        try:
            parser.receive_data(data)
            while True:
                event = parser.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Request):
                    state["request"], state["body"] = event, b""
                elif isinstance(event, h11.Data):
                    state["body"] += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._answer(conn, parser, state["request"], state["body"])
                    if "ws" in state:  # what came after the Upgrade request is WebSocket frames
                        trailing = bytes(parser.trailing_data[0])
                        return self._ws_received(conn, state["ws"], trailing) if trailing else None
                    if state.get("streaming"):
                        return
                    if conn.closed or parser.our_state is h11.MUST_CLOSE:
                        conn.close()
                        return
                    parser.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return
        except h11.ProtocolError as e:
            conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            conn.close()
            self.requests.append({"error": f"not an HTTP request: {e}"})

    def _answer(self, conn: Any, parser: h11.Connection, request: h11.Request, body: bytes) -> None:
        target = request.target.decode("latin-1")
        method = request.method.decode("latin-1")
        seen = {"method": method, "path": target,
                "headers": {k.decode("latin-1"): v.decode("latin-1") for k, v in request.headers},
                "body": body.decode("latin-1")}
        self.requests.append(seen)
        path = urlsplit(target).path
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
        if not any(k.lower() == "content-length" for k, _ in headers):
            headers.append(("Content-Length", str(len(payload))))
        out = parser.send(h11.Response(status_code=status, headers=headers, reason=_reason(status)))
        out += parser.send(h11.Data(data=payload)) if payload else b""
        out += parser.send(h11.EndOfMessage())
        conn.send(out)

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
