"""Driver workers: each driver runs apart from the hub, which only exchanges messages with it.

The hub owns the devices, the clock, the timers and the store; a worker owns
one driver's Lua state, its datastore validator and its dispatch. They talk
in JSON messages (channel.py). The hub sends one request at a time and waits
for its `done`; meanwhile the worker sends what driver code does (events,
logs, timers, device changes, datastore saves) and may ask the hub something
(`load` the snapshot, `flush` for a commit), which the hub answers at once.

Two transports carry the same messages:

* `ProcessWorker` (`hubrt run`): the worker is a forked process. A segfault,
  a memory cap overrun (RLIMIT_AS), a handler stuck where no Lua hook reaches
  (a C function, a finaliser) or a worker still busy when the hub is told to
  stop ends with the process killed, and the hub treats it as a driver crash
  of that driver alone: what it had saved is already in the hub's memory.
* `InlineWorker` (Lua tests): the worker object lives in the hub's process
  and messages are handed over directly, after the same JSON round trip, so
  the driver sees exactly what it would see in a process. A fork per test
  would cost more than the whole test (see bench/run.py).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import resource
import signal
import sys
import time
import traceback
from typing import Any, Callable

import orjson

from hubrt.bridge import to_lua
from hubrt.channel import Channel, ChannelClosed
from hubrt.driver import DriverHost, DriverOptions, Outcome
from hubrt.package import DriverPackage
from hubrt.store import StoreError

# How long a worker may stay silent past --handler-timeout before it is killed (its own Lua hook
# stops a runaway handler at the limit; this catches what the hook cannot reach).
KILL_GRACE = 1.0
# How long a busy worker is waited for once the hub is told to stop, and for its graceful stop.
STOP_GRACE = 2.0
# Room for the Python interpreter and lupa above the Lua state's own cap, in the worker's RLIMIT_AS.
ADDRESS_SPACE_ROOM = 512 * 1024 * 1024

Serve = Callable[[str, dict], Any]  # the hub's answer to a worker's message (None for notices)
REQUESTS = ("load", "flush")  # worker messages that wait for the hub's answer


def roundtrip(message: Any) -> Any:
    """The message as the other side of a channel receives it."""
    return orjson.loads(orjson.dumps(message))


# -- the worker side -------------------------------------------------------------


class HubLink:
    """What driver code asks of the hub, as messages. It is also the datastore's store: `save`
    hands changed keys to the hub's memory, `flush` (commit) and `load` wait for the hub."""

    def __init__(self, notify: Callable[[dict], None], request: Callable[[dict], dict]) -> None:
        self._notify = notify
        self._request = request
        self._timer_ids = itertools.count(1)
        self.now = time.time()  # hub time (as epoch seconds) when the current message was sent
        self._received = time.monotonic()
        self.real_clock = False

    def tick(self, now: float, real: bool) -> None:
        self.now, self._received, self.real_clock = now, time.monotonic(), real

    def epoch_seconds(self) -> float:
        """What driver code's os.time() answers: the hub's clock (moving on its own when real)."""
        return self.now + (time.monotonic() - self._received if self.real_clock else 0.0)

    def log(self, level: str, text: str) -> None:
        self._notify({"op": "log", "level": level, "text": text})

    def emit(self, device: str, component: str, capability: str, attribute: str, value: Any, unit: Any,
             state_change: bool) -> None:
        self._notify({"op": "emit", "device": device, "component": component, "capability": capability,
                      "attribute": attribute, "value": value, "unit": unit, "state_change": state_change})

    def timer_start(self, seconds: float, repeating: bool, name: Any) -> int:
        timer_id = next(self._timer_ids)
        self._notify({"op": "timer_start", "id": timer_id, "seconds": float(seconds), "repeating": bool(repeating),
                      "name": name.decode("utf-8", "replace") if isinstance(name, bytes) else None})
        return timer_id

    def timer_cancel(self, timer_id: int) -> None:
        self._notify({"op": "timer_cancel", "id": timer_id})

    def set_online(self, device: str, online: bool) -> None:
        self._notify({"op": "set_online", "device": device, "online": online})

    def create_device(self, meta: dict) -> None:
        self._notify({"op": "create_device", "meta": meta})

    # the datastore's store
    def save(self, driver: str, changes: dict[str, str | None]) -> None:
        self._notify({"op": "save", "changes": changes})

    def flush(self) -> None:
        answer = self._request({"op": "flush"})
        if answer.get("error"):
            raise StoreError(answer["error"])

    def load(self, driver: str) -> dict[str, Any]:
        answer = self._request({"op": "load"})
        if answer.get("error"):
            raise StoreError(answer["error"])
        return answer["snapshot"]


class Worker:
    """One driver as its worker runs it: answers the hub's messages."""

    def __init__(self, package: DriverPackage, options: DriverOptions, notify: Callable[[dict], None],
                 request: Callable[[dict], dict], coverage: Any = None) -> None:
        self.package = package
        self.options = options
        self.link = HubLink(notify, request)
        self.devices: dict[str, dict] = {}
        self.coverage = coverage
        self.host: DriverHost | None = None

    def handle(self, message: dict) -> dict | None:
        """The reply to one message from the hub (None for a notice that needs none)."""
        op = message["op"]
        if "devices" in message:  # "devices" alone, or with "start"
            self.devices.clear()
            self.devices.update((d["id"], d) for d in message["devices"])
        if op == "devices":
            return None
        self.link.tick(message["now"], message["real"])
        if op == "start":
            self.host = DriverHost(self.package, self.link, self.devices, self.options, self.coverage)
            return self._done(self.host.start())
        if op == "stop":
            return {"op": "done", "outcomes": self._stop()}
        return self._done(self.host.call(message["what"], *self._dispatch_args(message)))

    def _dispatch_args(self, m: dict) -> tuple:
        runtime = self.host.state.runtime
        op = m["op"]
        if op == "lifecycle":
            return ("_on_device_lifecycle", m["device"].encode(), m["event"].encode(),
                    to_lua(runtime, m["args"]) if m.get("args") else None)
        if op == "command":
            named = m["args"]
            return ("_on_capability_command", m["device"].encode(), m["capability"].encode(),
                    m["component"].encode(), m["command"].encode(), to_lua(runtime, named) if named else None,
                    to_lua(runtime, list(named.values())) if named else None)
        if op == "timer":
            return ("_on_timer", m["id"])
        if op == "discovery":
            return ("_on_discovery",)
        raise ValueError(f"unknown message {op!r}")

    def _done(self, outcome: Outcome) -> dict:
        if not outcome.crashed:  # a crash loses what was not saved, as the Lua state dies with it
            self.host.datastore.save()
        return {"op": "done", "outcome": outcome.as_message()}

    def _stop(self) -> list[list]:
        """Graceful stop: `shutdown`, the rest of the main chunk, then everything saved."""
        reports = []
        host = self.host
        if host.lua_driver is not None:
            outcome = host.call("driver_lifecycle shutdown", "_on_driver_lifecycle", b"shutdown")
            if not outcome.ok:
                reports.append(["driver_lifecycle shutdown", outcome.as_message()])
            outcome = host.finish()
            if not outcome.ok:
                reports.append(["src/init.lua after driver:run()", outcome.as_message()])
        host.datastore.force_save()
        return reports


def serve(channel: Channel, worker: Worker) -> None:
    """The worker process's loop: one message from the hub at a time, until it stops or goes away."""
    while True:
        try:
            message = channel.recv()
        except ChannelClosed:
            return
        reply = worker.handle(message)
        if reply is not None:
            channel.send(reply)
        if message["op"] == "stop":
            return


# -- the hub side ---------------------------------------------------------------


class WorkerHandle:
    """The hub's end of one driver's worker. `serve` answers what the worker sends."""

    def __init__(self, package: DriverPackage, options: DriverOptions, serve: Serve,
                 stop_requested: Callable[[], bool]) -> None:
        self.package = package
        self.name = package.package_key
        self.options = options
        self._serve = serve
        self._stop_requested = stop_requested
        self.running = False  # the main chunk is inside driver:run()

    def start(self, message: dict) -> Outcome:
        raise NotImplementedError

    def call(self, message: dict) -> Outcome:
        """Sends one dispatch and waits until the worker is done with it."""
        raise NotImplementedError

    def notify(self, message: dict) -> None:
        raise NotImplementedError

    def stop(self, message: dict) -> list[tuple[str, Outcome]]:
        """Graceful stop; returns what went wrong in shutdown, as (what, outcome)."""
        raise NotImplementedError

    def kill(self) -> None:
        """Ends the worker at once: what it did not save is lost."""
        raise NotImplementedError

    @staticmethod
    def _outcome(reply: dict) -> Outcome:
        o = reply["outcome"]
        return Outcome(o["kind"], o["message"], o["traceback"])


class InlineWorker(WorkerHandle):
    """A worker in the hub's own process (Lua tests): the same messages, handed over directly."""

    def __init__(self, *args: Any, coverage: Any = None) -> None:
        super().__init__(*args)
        self.worker = Worker(self.package, self.options, self._notice, self._request, coverage)

    def _notice(self, message: dict) -> None:
        self._serve(self.name, roundtrip(message))

    def _request(self, message: dict) -> dict:
        return roundtrip(self._serve(self.name, roundtrip(message)))

    def _exchange(self, message: dict) -> dict:
        return roundtrip(self.worker.handle(roundtrip(message)))

    def start(self, message: dict) -> Outcome:
        return self.call(message)

    def call(self, message: dict) -> Outcome:
        outcome = self._outcome(self._exchange(message))
        self.running = self.worker.host is not None and self.worker.host.running
        return outcome

    def notify(self, message: dict) -> None:
        self.worker.handle(roundtrip(message))

    def stop(self, message: dict) -> list[tuple[str, Outcome]]:
        reply = self._exchange(message)
        return [(what, Outcome(**o)) for what, o in reply["outcomes"]]

    def kill(self) -> None:
        self.worker = None  # the Lua state is garbage from here on


_libc = None


def _die_with_parent() -> None:
    """The worker gets SIGKILL when the hub's process ends, however it ends (Linux)."""
    global _libc
    try:
        _libc = _libc or ctypes.CDLL(None, use_errno=True)
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


class ProcessWorker(WorkerHandle):
    """A worker in a forked process of its own."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.pid = 0
        self.channel: Channel | None = None

    # -- the child --------------------------------------------------------

    def _fork(self) -> None:
        hub_end, worker_end = Channel.pair()
        hub_pid = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                hub_end.close()
                self._become_worker(hub_pid, worker_end)
                serve(worker_end, Worker(self.package, self.options, worker_end.send,
                                         lambda m: _request(worker_end, m)))
                code = 0
            except ChannelClosed:
                code = 0  # the hub went away
            except BaseException:  # a bug of hubrt's own: say so on stderr, the hub reports the exit
                traceback.print_exc()
            finally:
                os._exit(code)
        worker_end.close()
        self.pid, self.channel = pid, hub_end

    def _become_worker(self, hub_pid: int, channel: Channel) -> None:
        import gc

        gc.freeze()  # the hub's objects copied into this process are never finalised here
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the hub's to handle
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with_parent()
        if os.getppid() != hub_pid:
            os._exit(0)
        keep = channel.fileno()
        os.closerange(3, keep)  # the store, the lock, other workers' channels: not the driver's business
        os.closerange(keep + 1, 1 << 16)
        if self.options.max_memory:
            limit = _address_space() + self.options.max_memory + ADDRESS_SPACE_ROOM
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    # -- the hub's end ----------------------------------------------------

    def start(self, message: dict) -> Outcome:
        self._fork()
        return self.call(message)

    def call(self, message: dict) -> Outcome:
        reply = self._exchange(message, self._limit())
        if isinstance(reply, Outcome):
            return reply
        outcome = self._outcome(reply)
        if message["op"] == "start":
            self.running = outcome.ok
        return outcome

    def _limit(self) -> float | None:
        timeout = self.options.handler_timeout
        return timeout + max(timeout, KILL_GRACE) if timeout > 0 else None

    def notify(self, message: dict) -> None:
        try:
            self.channel.send(message)
        except ChannelClosed:
            pass  # found out, and reported, at the next call

    def _exchange(self, message: dict, limit: float | None) -> dict | Outcome:
        """Sends a message and serves the worker until its `done`; an Outcome if the worker died
        or had to be killed."""
        try:
            self.channel.send(message)
        except ChannelClosed:
            return self._died()
        start = time.monotonic()
        deadline = None if limit is None else start + limit
        stopping = False
        while True:
            try:
                reply = self.channel.recv(timeout=0.1)
            except ChannelClosed:
                return self._died()
            now = time.monotonic()
            if reply is None:
                if not stopping and self._stop_requested():
                    stopping = True
                    deadline = min(deadline or now + STOP_GRACE, now + STOP_GRACE)
                if deadline is not None and now > deadline:
                    took = now - start
                    self.kill()
                    cause = ("it was still busy when the hub was told to stop" if stopping else
                             f"it did not stop at --handler-timeout {self.options.handler_timeout:g} s "
                             "(stuck where no Lua hook reaches, e.g. a C function or a finaliser)")
                    return Outcome("died", f"{message.get('what', message['op'])}: the worker process was "
                                           f"killed after {took:.1f} s: {cause}")
                continue
            if reply["op"] == "done":
                return reply
            answer = self._serve(self.name, reply)
            if reply["op"] in REQUESTS:
                try:
                    self.channel.send(answer)
                except ChannelClosed:
                    return self._died()

    def _died(self) -> Outcome:
        status = self._reap(block=True)
        if status is not None and os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = f"signal {sig}"
            detail = f"killed by {name}" + (" (the Lua engine crashed)" if sig in (signal.SIGSEGV, signal.SIGBUS,
                                                                                  signal.SIGABRT) else "")
        elif status is not None:
            detail = f"exit status {os.WEXITSTATUS(status)}"
        else:
            detail = "it went away"
        self._close()
        return Outcome("died", f"the worker process died: {detail}")

    def _reap(self, block: bool) -> int | None:
        if not self.pid:
            return None
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return None
        if pid == 0:
            return None
        self.pid = 0
        return status

    def _close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self.running = False

    def stop(self, message: dict) -> list[tuple[str, Outcome]]:
        # shutdown and the end of the main chunk each get the handler limit; bounded even without one
        reply = self._exchange(message, 2 * (self._limit() or 0) + STOP_GRACE)
        self._close()
        if isinstance(reply, Outcome):
            return [("driver_lifecycle shutdown", reply)]
        self._reap(block=True)
        return [(what, Outcome(**o)) for what, o in reply["outcomes"]]

    def kill(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reap(block=True)
        self._close()


def _request(channel: Channel, message: dict) -> dict:
    """A worker's question to the hub: the hub answers before it sends anything else."""
    channel.send(message)
    answer = channel.recv()
    if answer is None:
        raise ChannelClosed("no answer from the hub")
    return answer
