"""The message channel between the hub and a driver's worker process.

Messages are JSON objects (orjson), each framed by a 4-byte length, over one
Unix stream socket. JSON rather than pickle because the worker runs untrusted
code: whatever a compromised worker writes, the hub only ever decodes data.
Both ends read through a buffer, so the several messages a dispatch produces
(events, logs, a save, the reply) cost the receiver one read when they arrive
together.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from typing import Any

import orjson

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 1 << 30  # a frame longer than this is a broken (or hostile) peer


class ChannelClosed(Exception):
    """The other end went away (its process ended) or sent something that is not a message."""


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: dict) -> None:
        data = orjson.dumps(message)
        try:
            self.sock.sendall(_HEADER.pack(len(data)) + data)
        except OSError as e:  # EPIPE, ECONNRESET: the peer is gone
            raise ChannelClosed(str(e)) from None

    def _take(self) -> Any:
        if len(self._buf) < 4:
            return None
        (size,) = _HEADER.unpack_from(self._buf)
        if size > MAX_MESSAGE:
            raise ChannelClosed(f"a message of {size} bytes announced; the peer is broken")
        if len(self._buf) < 4 + size:
            return None
        data = bytes(self._buf[4:4 + size])
        del self._buf[:4 + size]
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as e:
            raise ChannelClosed(f"not a message: {e}") from None

    def recv(self, timeout: float | None = None) -> dict | None:
        """The next message, or None when none came within `timeout` seconds (None: wait for ever).
        Raises ChannelClosed when the other end is gone."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            message = self._take()
            if message is not None:
                return message
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                    return None
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError as e:
                raise ChannelClosed(str(e)) from None
            if not chunk:
                raise ChannelClosed("the other end closed the channel")
            self._buf += chunk

    def close(self) -> None:
        self.sock.close()
