"""The real network (`hubrt run --network real`): a driver's sockets are sockets of its worker
process, non-blocking, watched with a selector in the worker's loop beside the hub's channel.

Calls are answered at once, as the simulated LAN answers them (a connect in progress is
"pending"); what arrives later -- a connection made or refused, bytes, a datagram, the peer
closing -- comes out of `take_events` as the same events the simulated LAN delivers. A TLS
handshake (cosock.ssl) wraps a connected socket with Python's ssl module; it waits, up to the
socket's timeout, as a send waits for room.
"""

from __future__ import annotations

import errno
import itertools
import os
import select
import selectors
import socket
import time
from typing import Callable

from hubrt.channel import SPIN

SEND_TIMEOUT = 5.0  # seconds a send may wait for room in the socket's buffer
_KINDS = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}


class RealNetwork:
    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._sockets: dict[int, socket.socket] = {}  # the driver's socket id -> the socket
        self._connecting: set[int] = set()
        self._bound: set[int] = set()  # UDP sockets with an address (sendto binds one first)
        self._listening: set[int] = set()
        self._wrapped: set[int] = set()  # sockets wrapped by a TLS handshake (ssl is loaded for the first)
        self._accepted = itertools.count(1_000_000)  # ids of accepted connections (the driver's count up from 1)

    def ready(self, timeout: float | None) -> list[int]:
        """The driver's socket ids with something to take (waits up to `timeout`, polling for the
        first SPIN seconds as the hub's channel does: an answer from a nearby host then costs no
        wake-up)."""
        end = time.perf_counter() + min(SPIN, timeout if timeout is not None else SPIN)
        while True:
            ready = self.selector.select(0)
            if ready or time.perf_counter() >= end:
                break
        if not ready and (timeout is None or timeout > SPIN):
            ready = self.selector.select(None if timeout is None else timeout - SPIN)
        return [key.data for key, _ in ready]

    def watched(self) -> bool:
        return bool(self._sockets)

    # -- calls ------------------------------------------------------------------

    def call(self, m: dict) -> dict:
        handler: Callable[[dict], dict] | None = getattr(self, "_" + str(m.get("call")), None)
        if handler is None or m.get("call") not in ("connect", "send", "close", "bind", "sendto", "resolve", "mdns",
                                                    "listen", "setpeer", "tls"):
            return {"error": f"unknown network call {m.get('call')!r}"}
        try:
            return handler(m)
        except OSError as e:
            return {"error": _reason(e)}

    def _open(self, sock_id: int, kind: str) -> socket.socket:
        sock = self._sockets.get(sock_id)
        if sock is None:
            sock = socket.socket(socket.AF_INET, _KINDS[kind])
            sock.setblocking(False)
            self._sockets[sock_id] = sock
        return sock

    def _watch(self, sock_id: int, events: int) -> None:
        sock = self._sockets[sock_id]
        if sock in self.selector.get_map():
            self.selector.modify(sock, events, sock_id)
        else:
            self.selector.register(sock, events, sock_id)

    def _connect(self, m: dict) -> dict:
        sock = self._open(m["sock"], "tcp")
        code = sock.connect_ex((socket.gethostbyname(m["host"]), int(m["port"])))
        if code in (errno.EINPROGRESS, errno.EWOULDBLOCK):
            if not _writable_now(sock):  # (a nearby host has often answered already)
                self._connecting.add(m["sock"])
                self._watch(m["sock"], selectors.EVENT_WRITE)
                return {"pending": True}
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._drop(m["sock"])
            return {"error": _reason(OSError(code, os.strerror(code)))}
        self._watch(m["sock"], selectors.EVENT_READ)
        return {"ok": True, "peer": list(sock.getpeername()), "local": list(sock.getsockname())}

    def _send(self, m: dict) -> dict:
        sock = self._sockets.get(m["sock"])
        if sock is None:
            return {"error": "closed"}
        sock.settimeout(SEND_TIMEOUT)
        try:
            sock.sendall(m["data"].encode("latin-1"))
        finally:
            sock.setblocking(False)
        return {"ok": True}

    def _tls(self, m: dict) -> dict:
        """Wraps a connected socket in TLS and shakes hands (verifying the server's certificate against
        this machine's trusted ones when asked)."""
        import ssl  # (its import costs every start of the hub ~7 ms: only drivers that use TLS pay)

        sock = self._sockets.get(m["sock"])
        if sock is None or m["sock"] in self._connecting:
            return {"error": "closed" if sock is None else "not connected"}
        context = ssl.create_default_context()
        if not m.get("verify"):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.selector.unregister(sock)
        wrapped = context.wrap_socket(sock, server_hostname=m.get("server_name") or None,
                                      do_handshake_on_connect=False)
        self._sockets[m["sock"]] = wrapped
        self._wrapped.add(m["sock"])
        try:
            wrapped.settimeout(m.get("timeout") or SEND_TIMEOUT)
            wrapped.do_handshake()
        except ssl.SSLCertVerificationError as e:
            self._drop(m["sock"])
            return {"error": f"certificate verify failed: {e.verify_message}"}
        except (ssl.SSLError, OSError) as e:
            self._drop(m["sock"])
            return {"error": _reason(e) if not isinstance(e, ssl.SSLError) else f"tls: {e.reason or e}"}
        wrapped.setblocking(False)
        self._watch(m["sock"], selectors.EVENT_READ)
        return {"ok": True}

    def _close(self, m: dict) -> dict:
        self._drop(m["sock"])
        return {"ok": True}

    def _bind(self, m: dict) -> dict:
        sock = self._open(m["sock"], "udp")
        sock.bind(_local_address(m))
        self._bound.add(m["sock"])
        self._watch(m["sock"], selectors.EVENT_READ)
        return {"ok": True, "local": list(sock.getsockname())}

    def _sendto(self, m: dict) -> dict:
        sock = self._open(m["sock"], "udp")
        if m["sock"] not in self._bound:
            self._bind({"sock": m["sock"]})
        if m["host"] == "239.255.255.250" or m["host"].endswith(".255"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.sendto(m["data"].encode("latin-1"), (socket.gethostbyname(m["host"]), int(m["port"])))
        return {"ok": True}

    def _setpeer(self, m: dict) -> dict:
        """A UDP socket's default peer (no packet is sent): its own address becomes the interface's."""
        sock = self._open(m["sock"], "udp")
        sock.connect((socket.gethostbyname(m["host"]), int(m["port"])))
        self._bound.add(m["sock"])
        self._watch(m["sock"], selectors.EVENT_READ)
        return {"ok": True, "local": list(sock.getsockname())}

    def _listen(self, m: dict) -> dict:
        sock = self._open(m["sock"], "tcp")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(_local_address(m))
        sock.listen(16)
        self._listening.add(m["sock"])
        self._watch(m["sock"], selectors.EVENT_READ)
        return {"ok": True, "local": list(sock.getsockname())}

    def _resolve(self, m: dict) -> dict:
        return {"ip": socket.gethostbyname(m["host"])}

    def _mdns(self, m: dict) -> dict:
        from hubrt.net import mdns  # dnspython is loaded where a driver discovers

        return mdns.discover(m["host"], m.get("data") or "local")

    def _drop(self, sock_id: int) -> None:
        sock = self._sockets.pop(sock_id, None)
        self._connecting.discard(sock_id)
        self._bound.discard(sock_id)
        self._listening.discard(sock_id)
        self._wrapped.discard(sock_id)
        if sock is not None:
            try:
                self.selector.unregister(sock)
            except KeyError:
                pass
            sock.close()

    # -- what arrived ---------------------------------------------------------------

    def take_events(self, ready: list[int]) -> list[dict]:
        events = []
        for sock_id in ready:
            sock = self._sockets.get(sock_id)
            if sock is None:
                continue
            if sock_id in self._listening:
                try:
                    client, peer = sock.accept()
                except BlockingIOError:
                    continue
                client.setblocking(False)
                client_id = next(self._accepted)
                self._sockets[client_id] = client
                self._watch(client_id, selectors.EVENT_READ)
                events.append({"sock": sock_id, "accepted": client_id, "peer": list(peer),
                               "local": list(client.getsockname())})
                continue
            if sock_id in self._connecting:
                self._connecting.discard(sock_id)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    events.append({"sock": sock_id, "error": _reason(OSError(code, os.strerror(code)))})
                    self._drop(sock_id)
                else:
                    self._watch(sock_id, selectors.EVENT_READ)
                    events.append({"sock": sock_id, "connected": True, "peer": list(sock.getpeername()),
                                   "local": list(sock.getsockname())})
                continue
            try:
                if sock.type == socket.SOCK_DGRAM:
                    data, sender = sock.recvfrom(65536)
                    events.append({"sock": sock_id, "data": data.decode("latin-1"), "from": list(sender)})
                    continue
                data = _recv_tls(sock) if sock_id in self._wrapped else sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                events.append({"sock": sock_id, "error": _reason(e)})
                self._drop(sock_id)
                continue
            if data:
                events.append({"sock": sock_id, "data": data.decode("latin-1")})
            else:
                events.append({"sock": sock_id, "closed": True})
                self._drop(sock_id)
        return events

    def close(self) -> None:
        for sock_id in list(self._sockets):
            self._drop(sock_id)
        self.selector.close()


def _recv_tls(sock: socket.socket) -> bytes:
    """What a TLS socket has decrypted (a record may hold more than one read takes, and what it
    buffers is not signalled to the selector); BlockingIOError while a record is incomplete."""
    import ssl

    try:
        data = sock.recv(65536)
        while data and sock.pending():
            data += sock.recv(65536)
        return data
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        raise BlockingIOError from None


def _local_address(m: dict) -> tuple[str, int]:
    """Where a driver binds a socket: `*` (or 0.0.0.0) is every interface; port 0 any free port."""
    host = m.get("host") or ""
    return ("" if host in ("*", "0.0.0.0") else host, int(m.get("port") or 0))


def local_ipv4() -> str:
    """This machine's address on its LAN (the one a connection out would use; nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # a documentation address: routing only, no packet
            return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def is_ipv4(text: str) -> bool:
    try:
        return isinstance(text, str) and socket.inet_aton(text) is not None and text.count(".") == 3
    except OSError:
        return False


_REASONS = {errno.ECONNREFUSED: "connection refused", errno.ECONNRESET: "connection reset by peer",
            errno.ETIMEDOUT: "timeout", errno.EHOSTUNREACH: "host is unreachable",
            errno.ENETUNREACH: "network is unreachable", errno.EPIPE: "closed"}


def _writable_now(sock: socket.socket) -> bool:
    poll = select.poll()
    poll.register(sock, select.POLLOUT)
    return bool(poll.poll(0))


def _reason(e: OSError) -> str:
    """The words luasocket uses for the common failures, else the system's."""
    if isinstance(e, socket.gaierror):
        return "host not found"
    if isinstance(e, TimeoutError):
        return "timeout"
    return _REASONS.get(e.errno, e.strerror or str(e))

