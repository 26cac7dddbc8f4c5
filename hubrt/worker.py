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
import gc
import itertools
import os
import resource
import selectors
import signal
import sys
import time
import traceback
from collections import deque
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from hubrt.bridge import net_events, to_lua
from hubrt.channel import Channel, ChannelClosed
from hubrt.driver import OK, DriverHost, DriverOptions, DriverRuntime, Outcome
from hubrt.engine import LuaFailure
from hubrt.net.real import RealNetwork
from hubrt.package import DriverPackage
from hubrt.store import StoreError

# How long a worker may stay silent past --handler-timeout before it is killed (its own Lua hook
# stops a runaway handler at the limit; this catches what the hook cannot reach).
KILL_GRACE = 1.0
# How long a busy worker is waited for once the hub is told to stop, and for its graceful stop.
STOP_GRACE = 2.0
# Room for the Python interpreter and lupa above the Lua state's own cap, in the worker's RLIMIT_AS.
ADDRESS_SPACE_ROOM = 512 * 1024 * 1024
# Dispatches posted to a worker before the hub waits for some to finish: enough to keep a worker
# busy while the hub prepares the next ones, few enough that neither side's socket buffer fills.
# The hub then waits only for one SEND_BATCH to finish (its count includes finished dispatches whose
# replies it has not read yet: waiting for half of them let the worker run dry once per round).
MAX_IN_FLIGHT = 64
# Dispatches the hub queues to a worker before it writes them in one go (it also writes them
# whenever it waits for the worker).
SEND_BATCH = 16
# Dispatches a worker takes into one call into Lua when they were waiting together (each still
# runs as if alone: its tasks before the next one): one crossing instead of one per dispatch.
MAX_BATCH = 16
# Allocations between two collections of the youngest generation in a worker (CPython's default is
# 700). A dispatch allocates dozens of short-lived messages and lists that reference counting frees,
# so collections find nothing and cost ~10% of a command (measured); cyclic garbage (Lua tables
# Python held) is still collected, a little later.
GC_THRESHOLD = 20_000

Serve = Callable[[str, dict, Any], Any]  # (driver, message, device) -> the hub's answer (None for notices)
REQUESTS = ("load", "flush", "net")  # worker messages that wait for the hub's answer
DONE = {"op": "done"}  # a dispatch that went well (the commonest reply: no outcome means "ok")
BATCHABLE = ("lifecycle", "command", "timer", "discovery", "net")  # dispatches a batch may hold


def roundtrip(message: Any) -> Any:
    """The message as the other side of a channel receives it."""
    return orjson.loads(orjson.dumps(message))


# -- the worker side -------------------------------------------------------------


class HubLink:
    """What driver code asks of the hub, as messages. It is also the datastore's store: `save`
    hands changed keys to the hub's memory, `flush` (commit) and `load` wait for the hub."""

    def __init__(self, notify: Callable[[dict], None], request: Callable[[dict], dict],
                 deliver: Callable[[], None]) -> None:
        self._notify = notify
        self._request = request
        self.hand_over = deliver  # what was notified so far reaches the hub now (an explicit ds:save())
        self._timer_ids = itertools.count(1)
        self.network: RealNetwork | None = None  # the worker's own sockets (--network real)
        self.environment: dict[str, Any] = {}  # what driver.environment_info holds (the hub sends it)
        self.now = time.time()  # hub time (as epoch seconds) when the current message was sent
        self._received = time.monotonic()
        self.real_clock = False
        self.directory: dict = {"hub": None, "hosts": {}}  # the simulated LAN's, as the hub last sent it
        self._ports = itertools.count(49152)  # local ports of the connections the worker makes itself

    def tick(self, now: float, real: bool) -> None:
        self.now, self._received, self.real_clock = now, time.monotonic(), real

    def epoch_seconds(self) -> float:
        """What driver code's os.time() answers: the hub's clock (moving on its own when real)."""
        return self.now + (time.monotonic() - self._received if self.real_clock else 0.0)

    def log(self, level: str, text: str, device: str | None = None) -> None:
        self._notify({"op": "log", "level": level, "text": text, "device": device})

    def print(self, text: str) -> None:
        """A standalone script's print()."""
        self._notify({"op": "print", "text": text})

    def emit(self, device: str, component: str, capability: str, attribute: str, value: Any, unit: Any,
             state_change: bool) -> None:
        # (the commonest message of all: its fields in order, as Hub.record_event takes them)
        self._notify({"op": "emit", "event": [device, component, capability, attribute, value, unit, state_change]})

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

    def update_metadata(self, device: str, meta: dict) -> None:
        self._notify({"op": "update_metadata", "device": device, "meta": meta})

    def inject(self, device: str, capability: str, command: str, args: Any) -> None:
        self._notify({"op": "inject", "device": device, "capability": capability, "command": command, "args": args})

    # the datastore's store
    def save(self, driver: str, changes: dict[str, str | None]) -> None:
        self._notify({"op": "save", "changes": changes})

    def flush(self) -> None:
        answer = self._request({"op": "flush"})
        if answer.get("error"):
            raise StoreError(answer["error"])

    def net(self, call: dict) -> dict:
        """A socket call (connect, send...), answered at once: by the worker's own sockets on the real
        network, else by the hub's simulated LAN (with what the peer sent back meanwhile; a close
        needs no answer)."""
        if self.network is not None:
            return self.network.call(call)
        if call["call"] == "close":
            self._notify({"op": "net_close", **call})
            return {"ok": True}
        if call["call"] == "connect":  # to a host the LAN's directory says takes it: the hub hears of it
            target = self.directory["hosts"].get(call.get("host"))
            port = call.get("port")
            if target is not None and port in target[1]:
                self._notify({"op": "net_connect", **call})
                return {"ok": True, "peer": [target[0], port], "local": [self.directory["hub"], next(self._ports)]}
        return self._request({"op": "net", **call})

    def load(self, driver: str) -> dict[str, Any]:
        answer = self._request({"op": "load"})
        if answer.get("error"):
            raise StoreError(answer["error"])
        return answer["snapshot"]


class Worker:
    """One driver as its worker runs it: answers the hub's messages."""

    def __init__(self, name: str, package: DriverPackage | None, options: DriverOptions,
                 notify: Callable[[dict], None], request: Callable[[dict], dict],
                 deliver: Callable[[], None] = lambda: None, coverage: Any = None) -> None:
        """`package` is None for a standalone script (`hubrt lua`)."""
        self.name = name
        self.package = package
        self.options = options
        self.link = HubLink(notify, request, deliver)
        if options.network == "real":
            self.link.network = RealNetwork()
        self.devices: dict[str, dict] = {}
        self.coverage = coverage
        self.host: DriverRuntime | None = None
        self._unsaved = False  # dispatches handled since the last save

    def handle(self, message: dict) -> dict | None:
        """The reply to one message from the hub (None for a notice that needs none)."""
        op = message["op"]
        if "environment" in message:  # with "start", and on a change
            self.link.environment.update(message["environment"])
        if "devices" in message:  # "devices" alone, or with "start"
            self.devices.clear()
            self.devices.update((d["id"], d) for d in message["devices"])
        if op == "lan":
            self.link.directory = message["directory"]
            return None
        if op == "devices":
            return None
        self.link.tick(message["now"], message["real"])
        if op in ("start", "script"):
            try:
                if op == "script":
                    return self._done(self._run_script(Path(message["path"])))
                self.host = DriverHost(self.package, self.link, self.devices, self.options, self.coverage)
            except StoreError as e:  # the driver's saved data cannot be loaded: the hub says why
                return {"op": "done", "outcome": Outcome("store", str(e)).as_message()}
            return self._done(self.host.start())
        if op == "stop":
            return {"op": "done", "outcome": Outcome("ok").as_message(), "reports": self._stop()}
        method, args = self._dispatch_args(message)
        return self._done(self.host.call(message["what"], method, *args))

    def handle_all(self, messages: list[dict], reply: Callable[[dict, bool], None]) -> None:
        """Dispatches that were waiting together (see `batchable`), in one call into Lua, each
        exactly as `handle` makes it; `reply(its reply, more to come)` after each, in order, so
        that what a dispatch told the hub comes before its reply."""
        self.link.tick(messages[0]["now"], messages[0]["real"])
        left = len(messages)

        def done(outcome: Outcome) -> None:
            nonlocal left
            left -= 1
            reply(self._done(outcome), left > 0)

        self.host.call_all([(m["what"], *self._dispatch_args(m)) for m in messages], done)

    @staticmethod
    def batchable(message: dict, first: dict) -> bool:
        """Whether `message` can join a batch that starts with `first`: a dispatch to the running
        driver, sent at the same hub time (a virtual clock), that changes nothing else first."""
        return (message["op"] in BATCHABLE and "environment" not in message and "devices" not in message
                and (message["real"] or message["now"] == first["now"]))

    def _dispatch_args(self, m: dict) -> tuple[str, tuple]:
        """The driver method a dispatch calls, and its arguments."""
        runtime = self.host.state.runtime
        op = m["op"]
        if op == "lifecycle":
            return "_on_device_lifecycle", (m["device"].encode(), m["event"].encode(),
                                            to_lua(runtime, m["args"]) if m.get("args") else None)
        if op == "command":
            named = m["args"]
            return "_on_capability_command", (
                m["device"].encode(), m["capability"].encode(), m["component"].encode(), m["command"].encode(),
                to_lua(runtime, named) if named else None, to_lua(runtime, list(named.values())) if named else None)
        if op == "timer":
            return "_on_timer", (m["id"],)
        if op == "discovery":
            return "_on_discovery", ()
        if op == "net":
            return "_on_net", (net_events(runtime, m["events"]),)
        if op == "environment":
            return "_on_environment", (to_lua(runtime, m["environment"]),)
        raise ValueError(f"unknown message {op!r}")

    def _run_script(self, path: Path) -> Outcome:
        """A standalone Lua file as a one-driver hub: an uncaught error is a driver crash."""
        o, link = self.options, self.link
        self.host = DriverRuntime(self.name, link, engine=o.engine, strict=o.strict, max_memory=o.max_memory,
                                  src_dir=path.parent, print_line=link.print,
                                  warn=lambda text: link.log("warn", text), log=link.log)
        self.host.state.helpers.set_clock(link.epoch_seconds)
        try:
            self.host.run_file(path)
        except LuaFailure as e:
            return Outcome("syntax" if e.kind == "syntax" else "exit", e.message, e.traceback)
        return Outcome("ok")

    def _done(self, outcome: Outcome) -> dict:
        # a crash loses what was not saved (this batch's earlier dispatches too), as the Lua state dies with it
        self._unsaved = not outcome.crashed
        if outcome.kind == "ok" and not outcome.message and (self.host is None or not self.host.reports):
            return DONE  # (the commonest reply, made once)
        reply = {"op": "done", "outcome": outcome.as_message()}
        if self.host is not None and self.host.reports:
            reply["reports"] = self.host.take_reports()
        return reply

    def end_batch(self) -> None:
        """Saves a dirty datastore after each batch of dispatches, as a hub does (spec: datastore §4):
        called before the reply that ends the batch, so the save reaches the hub before it."""
        if self._unsaved:
            self._unsaved = False
            self.host.datastore.save()

    def _stop(self) -> list[list]:
        """Graceful stop: `shutdown`, the rest of the main chunk, then everything saved."""
        reports = []
        host = self.host
        if host.lua_driver is not None:
            outcome = host.call("driver_lifecycle shutdown", "_on_driver_lifecycle", b"shutdown")
            if outcome.kind == "exit":  # os.exit in its shutdown handler: how a driver ends itself on a hub
                host.running = False
            elif not outcome.ok:
                reports.append(["driver_lifecycle shutdown", outcome.as_message()])
            outcome = host.finish()
            if not outcome.ok:
                reports.append(["src/init.lua after driver:run()", outcome.as_message()])
        host.datastore.force_save()
        return host.take_reports() + reports


def serve(worker: Worker, outbox: Outbox) -> None:
    """The worker process's loop: one message from the hub at a time, until it stops or goes away;
    on the real network, what the driver's sockets get between them."""
    network = worker.link.network
    if network is not None:
        network.selector.register(outbox.channel.sock, selectors.EVENT_READ, None)

    def reply(message: dict, more: bool) -> None:
        outbox.reply(message, worker.end_batch, more)

    while True:
        if network is not None:
            _serve_sockets(worker, outbox, network)
        try:
            message = outbox.next_message()
        except ChannelClosed:
            return
        if worker.batchable(message, message) and worker.host is not None:
            worker.handle_all([message, *outbox.take_while(lambda m: worker.batchable(m, message), MAX_BATCH - 1)],
                              reply)
            continue
        answer = worker.handle(message)
        if answer is not None:
            reply(answer, False)
        if message["op"] == "stop":
            outbox.flush()  # the last reply goes out whatever else the hub sent meanwhile
            return


def _serve_sockets(worker: Worker, outbox: Outbox, network: RealNetwork) -> None:
    """Until the hub sends something, runs what the driver's real sockets get as dispatches of the
    worker's own; the hub hears of each as a `local_done` (its errors, a crash)."""
    while not outbox.waiting():
        ready = [r for r in network.ready(None) if r is not None]
        events = network.take_events(ready) if ready else []
        if events and worker.host is not None and worker.host.running:
            now = worker.link.epoch_seconds()
            reply = worker.handle({"op": "net", "what": "network", "events": events, "now": now, "real": True})
            if reply is DONE:  # nothing for the hub to hear of but what the dispatch told it
                worker.end_batch()
            else:
                outbox.reply({**reply, "op": "local_done"}, worker.end_batch, False)
            outbox.flush()


# -- the hub side ---------------------------------------------------------------


@dataclass
class Completion:
    """A dispatch the worker finished (or could not: `outcome.kind == "died"`)."""

    what: str
    outcome: Outcome
    reports: list[tuple[str, Outcome]] = field(default_factory=list)  # a graceful stop's problems


def completion(what: str, reply: dict) -> Completion:
    if "outcome" not in reply:  # DONE
        return Completion(what, OK)
    return Completion(what, Outcome(**reply["outcome"]),
                      [(w, Outcome(**o)) for w, o in reply.get("reports", ())])



class WorkerHandle:
    """The hub's end of one driver's worker.

    Delivery is asynchronous, as on a hub: `post` queues a dispatch and returns what the
    worker finished meanwhile; `settle` waits until the worker is idle. `serve(driver, message,
    device)` answers what the worker sends while it works on a dispatch for `device`.
    """

    def __init__(self, name: str, package: DriverPackage | None, options: DriverOptions, serve: Serve,
                 stop_requested: Callable[[], bool]) -> None:
        self.package = package
        self.name = name
        self.options = options
        self._serve = serve
        self._stop_requested = stop_requested
        self.running = False  # the main chunk is inside driver:run()
        self.lan_version = -1  # the version of the simulated LAN's directory the worker has

    def post(self, message: dict, device: str | None = None) -> list[Completion]:
        raise NotImplementedError

    def settle(self) -> list[Completion]:
        raise NotImplementedError

    def notify(self, message: dict) -> None:
        """A message that needs no answer (the driver's device records)."""
        raise NotImplementedError

    def kill(self) -> None:
        """Ends the worker at once: what it did not save is lost."""
        raise NotImplementedError

    def poll(self) -> list[Completion]:
        """Takes in what an idle worker did on its own (its real sockets); a worker that died meanwhile."""
        return []

    def has_news(self) -> bool:
        """Whether the worker has said something not yet taken in (nothing is taken)."""
        return False

    def call(self, message: dict) -> Completion:
        """Posts one dispatch and waits for it (the worker must be idle)."""
        done = (self.post(message) + self.settle())[-1]
        if message["op"] == "start":
            self.running = done.outcome.ok
        return done


class InlineWorker(WorkerHandle):
    """A worker in the hub's own process (Lua tests): the same messages, handed over directly."""

    def __init__(self, *args: Any, coverage: Any = None) -> None:
        super().__init__(*args)
        self._device: str | None = None
        self.worker = Worker(self.name, self.package, self.options, self._notice, self._request, coverage=coverage)

    def _notice(self, message: dict) -> None:
        self._serve(self.name, roundtrip(message), self._device)

    def _request(self, message: dict) -> dict:
        return roundtrip(self._serve(self.name, roundtrip(message), self._device))

    def post(self, message: dict, device: str | None = None) -> list[Completion]:
        self._device = device
        try:
            reply = self.worker.handle(roundtrip(message))
            self.worker.end_batch()  # a batch of one
            reply = roundtrip(reply)
        finally:
            self._device = None
        return [completion(message["what"], reply)]

    def settle(self) -> list[Completion]:
        return []

    def notify(self, message: dict) -> None:
        self.worker.handle(roundtrip(message))

    def kill(self) -> None:
        self.worker = None  # the Lua state is garbage from here on
        self.running = False


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
        self._in_flight: deque[tuple[str, str | None]] = deque()  # (what, device) of each posted dispatch
        self._progress = 0.0  # when the worker last said anything
        self._stopping_since: float | None = None  # when the hub was found told to stop
        self._graceful_stop = False  # the worker was sent "stop"

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
                outbox = Outbox(worker_end)
                serve(Worker(self.name, self.package, self.options, outbox.notify, outbox.request, outbox.flush),
                      outbox)
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
        gc.freeze()  # the hub's objects copied into this process are never finalised here
        gc.set_threshold(GC_THRESHOLD)  # (see GC_THRESHOLD)
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

    def _limit(self, op: str) -> float | None:
        """Seconds of silence after which a busy worker is killed."""
        timeout = self.options.handler_timeout
        limit = timeout + max(timeout, KILL_GRACE) if timeout > 0 else None
        if op == "stop":  # shutdown and the rest of the main chunk; bounded even without a handler limit
            return 2 * (limit or 0) + STOP_GRACE
        return limit

    def post(self, message: dict, device: str | None = None) -> list[Completion]:
        if message["op"] in ("start", "script"):
            self._fork()
        done = self._drain(MAX_IN_FLIGHT - SEND_BATCH) if len(self._in_flight) >= MAX_IN_FLIGHT else []
        what = message["what"]
        if self.channel is None:
            return done + [Completion(what, Outcome("died", "the worker process is gone"))]
        try:
            if self.channel.queue(message) >= SEND_BATCH or message["op"] in ("start", "script", "stop"):
                self.channel.flush()
        except ChannelClosed:
            return done + self._died([(what, device)])
        if not self._in_flight:
            self._progress = time.monotonic()
        self._in_flight.append((what, device))
        if message["op"] == "stop":
            self._graceful_stop = True
            done += self._drain(0)
            self._close()
            self._reap()
        return done

    def settle(self) -> list[Completion]:
        return self._drain(0) if self._in_flight else []

    def has_news(self) -> bool:
        if self.channel is None:
            return False
        try:
            self.channel.flush()  # (what was posted reaches the worker before the hub looks)
            return self.channel.pending() or self.channel.at_eof
        except ChannelClosed:
            return True

    def poll(self) -> list[Completion]:
        if self.channel is None:
            return []
        try:
            self.channel.flush()  # (whatever the hub queued goes out while it waits in real time)
            if self._in_flight:
                return []
            messages = self.channel.received()
        except ChannelClosed:
            return self._died([("network", None)])
        for message in messages:
            self._serve(self.name, message, None)
        return []

    def notify(self, message: dict) -> None:
        if self.channel is not None:
            try:
                self.channel.send(message)
            except ChannelClosed:
                pass  # found out, and reported, at the next dispatch

    def _drain(self, target: int) -> list[Completion]:
        """Serves the worker until at most `target` dispatches are in flight. Kills a worker that
        stays silent past its limit."""
        done: list[Completion] = []
        channel = self.channel
        try:
            channel.flush()  # what was posted goes out before the hub waits for it
        except ChannelClosed:
            return self._died(list(self._in_flight))
        while len(self._in_flight) > target:
            try:
                messages = channel.received(timeout=0.1)
            except ChannelClosed:
                return done + self._died(list(self._in_flight))
            if not messages:
                stuck = self._stuck()
                if stuck:
                    return done + self._killed(stuck)
                continue
            self._progress = time.monotonic()
            for message in messages:
                if message["op"] == "done":
                    what, _ = self._in_flight.popleft()
                    done.append(completion(what, message))
                    continue
                # (a worker on the real network may also tell what it did between dispatches)
                answer = self._serve(self.name, message, self._in_flight[0][1] if self._in_flight else None)
                if message["op"] in REQUESTS:
                    try:
                        channel.send({"op": "answer", **answer})
                    except ChannelClosed:
                        return done + self._died(list(self._in_flight))
        return done

    def _stuck(self) -> str | None:
        """Why the busy worker must be killed now, if it must."""
        now = time.monotonic()
        if self._stop_requested():
            self._stopping_since = self._stopping_since or now
            if now - self._stopping_since > STOP_GRACE:
                return "it was still busy when the hub was told to stop"
        limit = self._limit("stop" if self._graceful_stop else "dispatch")
        if limit is not None and now - self._progress > limit:
            return (f"it did not stop at --handler-timeout {self.options.handler_timeout:g} s (stuck where no "
                    "Lua hook reaches, e.g. a C function or a finaliser)")
        return None

    def _killed(self, cause: str) -> list[Completion]:
        silent = time.monotonic() - self._progress
        lost = list(self._in_flight)
        self.kill()
        what = lost[0][0]
        return [Completion(what, Outcome("died", f"the worker process was killed after {silent:.1f} s "
                                                 f"without an answer: {cause}{_lost(lost)}"))]

    def _died(self, lost: list[tuple[str, str | None]]) -> list[Completion]:
        status = self._reap()
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
        what = lost[0][0]
        return [Completion(what, Outcome("died", f"the worker process died: {detail}{_lost(lost)}"))]

    def _reap(self) -> int | None:
        """Waits for the worker process to end; its wait status."""
        if not self.pid:
            return None
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return None
        self.pid = 0
        return status

    def _close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        self._in_flight.clear()
        self.running = False

    def kill(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reap()
        self._close()


def _lost(lost: list[tuple[str, str | None]]) -> str:
    rest = len(lost) - 1
    return f"; {rest} more message(s) queued to the driver were lost with it" if rest > 0 else ""


class Outbox:
    """The worker's end of the channel. What dispatches tell the hub (events, saves, their replies)
    goes out in one write when the worker is about to wait for more work, or every REPLIES replies
    while the hub keeps it busy; log lines and prints go at once, so that the last thing a handler
    logged before it got stuck is seen."""

    LIMIT = 256  # messages held before they go out anyway
    REPLIES = 16

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._pending: list[dict] = []
        self._backlog: deque[dict] = deque()  # dispatches that came while waiting for an answer
        self._replies = 0  # replies not yet written

    def notify(self, message: dict) -> None:
        self._pending.append(message)
        if len(self._pending) >= self.LIMIT or message["op"] in ("log", "print"):
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self.channel.send(self._pending)
            self._pending = []
            self._replies = 0

    def request(self, message: dict) -> dict:
        """A worker's question to the hub. Dispatches the hub queued meanwhile wait their turn."""
        self.notify(message)
        self.flush()
        while True:
            incoming = self.channel.recv()
            if incoming["op"] == "answer":
                return incoming
            self._backlog.append(incoming)

    def next_message(self) -> dict:
        return self._backlog.popleft() if self._backlog else self.channel.recv()

    def take_while(self, wanted: Callable[[dict], bool], limit: int) -> list[dict]:
        """The messages that have arrived, from the next one on, as long as they are `wanted` (at
        most `limit`); nothing waits."""
        if not self._backlog:
            try:
                self._backlog.extend(self.channel.received())
            except ChannelClosed:
                pass  # the next wait finds out
        taken = []
        while self._backlog and len(taken) < limit and wanted(self._backlog[0]):
            taken.append(self._backlog.popleft())
        return taken

    def waiting(self) -> bool:
        """Whether the hub has sent something not yet taken."""
        return bool(self._backlog) or self.channel.pending() or self.channel.at_eof

    def reply(self, message: dict, end_batch: Callable[[], None], more: bool) -> None:
        """Queues a dispatch's reply (`more`: the worker holds more work already). The batch ends
        when no more work is waiting, or every REPLIES replies: `end_batch` then runs first (the
        datastore save), and everything goes out."""
        last = self._replies + 1 >= self.REPLIES or not (more or self._backlog or self.channel.pending())
        if last:
            end_batch()
        self.notify(message)
        self._replies += 1
        if last:
            self.flush()
