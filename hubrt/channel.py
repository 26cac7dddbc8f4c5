"""The message channel between the hub and a driver's worker process.

Messages are JSON objects (orjson), each framed by a 4-byte length, over one
Unix stream socket; a frame may also hold a JSON array of messages, so that
what a batch of dispatches produced (events, saves, replies) costs one encode,
one write and one decode. JSON rather than pickle because the worker runs
untrusted code: whatever a compromised worker writes, the hub only ever
decodes data, and anything but an object is refused.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections import deque

import orjson

_HEADER = struct.Struct(">I")
MAX_MESSAGE = 1 << 30  # a frame longer than this is a broken (or hostile) peer
# How long a wait polls before it sleeps. Waking a process that sleeps took 100-200 us on the
# machines this was measured on (a bare hub-worker round trip: 200 us; polling first: 18-24 us),
# and most answers come sooner: a handler's question to the hub, the reply to a dispatch. 1 ms
# rather than less because the other end may itself have been asleep when asked (a socket call
# from a driver: 251 us with 0.2 ms of polling, 123 us with 1 ms, in a slow hour). Only where
# another CPU can run the other end meanwhile.
SPIN = 0.001 if len(os.sched_getaffinity(0)) > 1 else 0.0


class ChannelClosed(Exception):
    """The other end went away (its process ended) or sent something that is not a message."""


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self._ready: deque[dict] = deque()  # messages read and decoded, not yet taken
        self._unsent = bytearray()  # frames queued, not yet written
        self._queued = 0
        self._eof = False

    @classmethod
    def pair(cls) -> tuple[Channel, Channel]:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(a), cls(b)

    def fileno(self) -> int:
        return self.sock.fileno()

    @staticmethod
    def frame(message: dict | list[dict]) -> bytes:
        data = orjson.dumps(message)
        return _HEADER.pack(len(data)) + data

    def send(self, message: dict | list[dict]) -> None:
        """One message, or a list of them in one frame (after any queued ones)."""
        self._unsent += self.frame(message)
        self.flush()

    def queue(self, message: dict) -> int:
        """A message that goes out with the next `send` or `flush`, in one write with the others
        queued; how many are queued now."""
        self._unsent += self.frame(message)
        self._queued += 1
        return self._queued

    def flush(self) -> None:
        """Writes the queued messages."""
        if not self._unsent:
            return
        data = bytes(self._unsent)
        self._unsent.clear()
        self._queued = 0
        try:
            self.sock.sendall(data)
        except OSError as e:  # EPIPE, ECONNRESET: the peer is gone
            raise ChannelClosed(str(e)) from None

    def _read(self, block: bool) -> bool:
        """Reads what has arrived (waiting for something if `block`) and decodes every whole
        message in it; False if nothing had arrived."""
        try:
            chunk = self.sock.recv(1 << 18, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:  # ECONNRESET: the other end closed with our last messages unread; what it
            chunk = b""  # sent before is still to be taken, as after an orderly close
        if not chunk:
            self._eof = True
            return False
        buf = self._buf
        buf += chunk
        pos, end = 0, len(buf)
        with memoryview(buf) as view:
            while end - pos >= 4:
                (size,) = _HEADER.unpack_from(view, pos)
                if size > MAX_MESSAGE:
                    raise ChannelClosed(f"a message of {size} bytes announced; the peer is broken")
                if end - pos - 4 < size:
                    break
                try:
                    data = orjson.loads(view[pos + 4:pos + 4 + size])
                except orjson.JSONDecodeError as e:
                    raise ChannelClosed(f"not a message: {e}") from None
                if type(data) is dict:
                    self._ready.append(data)
                elif type(data) is list and all(type(m) is dict for m in data):
                    self._ready.extend(data)
                else:
                    raise ChannelClosed("not a message: neither a JSON object nor a list of them")
                pos += 4 + size
        del buf[:pos]
        return True

    def _poll(self) -> None:
        """Takes in what arrives within SPIN seconds (until a whole message is ready)."""
        end = time.perf_counter() + SPIN
        while not self._ready and not self._eof and time.perf_counter() < end:
            self._read(block=False)

    def recv(self) -> dict:
        """The next message, waiting for it. Raises ChannelClosed when the other end is gone."""
        if not self._ready:
            self._poll()
        while not self._ready:
            if self._eof:
                raise ChannelClosed("the other end closed the channel")
            self._read(block=True)
        return self._ready.popleft()

    @property
    def at_eof(self) -> bool:
        """The other end closed the channel (what had arrived may still be taken)."""
        return self._eof

    def pending(self) -> bool:
        """True when a message (or part of one) has arrived and not been taken yet."""
        return bool(self._ready) or self._read(block=False)

    def received(self, timeout: float = 0.0) -> list[dict]:
        """Every message that has arrived, waiting up to `timeout` seconds for one (ChannelClosed
        once they are taken and the other end is gone: a last reply that came with the end of the
        channel is taken first)."""
        while self._read(block=False):
            pass
        if not self._ready and timeout > 0:
            self._poll()
        if not self._ready and not self._eof and timeout > 0 and select.select([self.sock], [], [], timeout)[0]:
            while self._read(block=False):
                pass
        if not self._ready and self._eof:
            raise ChannelClosed("the other end closed the channel")
        taken = list(self._ready)
        self._ready.clear()
        return taken

    def close(self) -> None:
        self.sock.close()
