"""Lua test files of a driver (src/test/test_*.lua), collected and run.

A test file runs in a Lua state of its own (the *controller*), separate from
the driver under test, which runs on a real Hub exactly as under `hubrt run`.
`require "hubrt.test"` gives the file `test(name, fn)` and `test.hub`, whose
functions cross into `TestBridge` here. Each test gets a fresh hub and store
(a new directory, in memory when /dev/shm has room) and a fresh controller
state, so nothing leaks between tests. pytest_plugin.py turns this into
pytest items; `hubrt test` runs pytest.
"""

from __future__ import annotations

import atexit
import collections
import functools
import gc
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hubrt.bridge import Bridge, to_lua
from hubrt.capabilities import Catalogue
from hubrt.coverage import LineCoverage
from hubrt.engine import LuaFailure, LuaState, as_text
from hubrt.hub import HandlerError, Hub, LogRecord, StopRequested
from hubrt.inputs import InputError
from hubrt.package import load_package

_POSITION = re.compile(r"^(?P<file>[^\s:][^:]*\.lua):(?P<line>\d+): ", re.M)
_FRAME = re.compile(r"^\s+(?P<file>[^\s:\[][^:]*\.lua):(?P<line>\d+): in ", re.M)  # a traceback line
_RAM_DISK, _RAM_DISK_ROOM = "/dev/shm", 512 * 1024 * 1024


@functools.cache
def _scratch() -> str:
    """Where this process keeps its tests' throw-away stores: in memory (/dev/shm) when it has room,
    since they are never meant to outlive the test; removed when the process ends. The folder's
    name carries the pid, so that what a killed run left behind is removed by the next one."""
    parent = scratch_parent()
    _remove_orphans(parent)
    root = tempfile.mkdtemp(prefix=f"hubrt-tests-{os.getpid()}-", dir=parent)
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def scratch_parent() -> str:
    """/dev/shm when it has room (tmpfs sizes of 64 MiB are common in containers), else the temp dir."""
    try:
        vfs = os.statvfs(_RAM_DISK)
        if vfs.f_bavail * vfs.f_frsize >= _RAM_DISK_ROOM and os.access(_RAM_DISK, os.W_OK):
            return _RAM_DISK
    except OSError:
        pass
    return tempfile.gettempdir()


def _remove_orphans(parent: str) -> None:
    for entry in os.scandir(parent):
        found = re.fullmatch(r"hubrt-tests-(\d+)-\w+", entry.name)
        if found and entry.is_dir(follow_symlinks=False) and not _alive(int(found[1])):
            shutil.rmtree(entry.path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def package_of(test_file: Path) -> Path | None:
    """The driver package a test file belongs to: the nearest folder above it with config.yml."""
    for folder in test_file.resolve().parents:
        if (folder / "config.yml").is_file():
            return folder
    return None


@dataclass
class DeclaredTest:
    name: str
    line: int
    skip: str | None
    fn: Any = None


class LuaTestFailure(Exception):
    """A Lua test failed; carries the Lua message, traceback and the failing file:line."""

    def __init__(self, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.traceback = traceback
        # where the message says, else the innermost frame of Lua code in the traceback
        found = _POSITION.search(message) or _FRAME.search(traceback)
        self.location = (found["file"], int(found["line"])) if found else None


class TestBridge(Bridge):
    """The `host` table of a test file: the hub under test, driven from Lua."""

    def __init__(self, state: LuaState, catalogue: Catalogue, out: Callable[[str], None],
                 wanted: str | None = None) -> None:
        """`wanted`: the one test that will run (None: the file's tests are being collected)."""
        super().__init__(state, catalogue, lambda level, text: out(f"[test {level}] {text}"))
        self.hub: Hub | None = None
        self.driver_name = ""
        self.wanted = wanted
        self._declared: tuple[Any, Any, Any] | None = None  # Lua tables: tests in order, tests by name, setups

    def functions(self) -> dict[str, Any]:
        guarded = {name: self._guard(fn) for name, fn in {
            "add_device": self.add_device, "remove_device": self.remove_device,
            "update_device": self.update_device, "command": self.command, "lifecycle": self.lifecycle,
            "discover": self.discover, "advance": self.advance, "restart": self.restart, "flush": self.flush,
            "events": self.events, "clear_events": self.clear_events, "logs": self.logs,
            "datastore": self.datastore, "device": self.device, "field": self.field, "state": self.state_of,
            "fatal_errors": self.fatal_errors, "lan_host": self.lan_host, "lan_fault": self.lan_fault,
            "lan_move": self.lan_move, "lan_remove": self.lan_remove, "lan_requests": self.lan_requests,
            "lan_sent": self.lan_sent, "lan_push": self.lan_push, "lan_drop": self.lan_drop,
            "set_hub_ip": self.set_hub_ip, "lan_notify": self.lan_notify, "lan_close": self.lan_close,
        }.items()}
        return {**super().functions(), **guarded, "declare": self.declare}

    def _guard(self, fn: Callable) -> Callable:
        """Hub refusals and fatal handler errors come back as (nil, message) for Lua to raise."""
        def call(*args: Any) -> Any:
            if self.hub is None:
                return None, b"the hub is only available inside a test (or test.setup)"
            try:
                return fn(*args), None
            except (InputError, HandlerError, StopRequested) as e:
                return None, str(e).encode()
        return call

    # -- declaring -----------------------------------------------------------

    def declare(self, declared: Any, by_name: Any, setups: Any) -> Any:
        """Takes the tables the file's tests are declared into; answers the one test wanted."""
        self._declared = (declared, by_name, setups)
        return None if self.wanted is None else self.wanted.encode()

    @staticmethod
    def _test(t: Any) -> DeclaredTest:
        return DeclaredTest(as_text(t[b"name"]), int(t[b"line"]), as_text(t[b"skip"]) if t[b"skip"] else None,
                            t[b"fn"])

    def tests(self) -> list[DeclaredTest]:
        """The file's tests, in the order it declared them."""
        declared = self._declared[0] if self._declared else []
        return [self._test(declared[i]) for i in range(1, len(declared) + 1)]

    def test(self, name: str) -> DeclaredTest | None:
        found = self._declared[1][name.encode()] if self._declared else None
        return None if found is None else self._test(found)

    def setups(self) -> list[Any]:
        return list(self._declared[2].values()) if self._declared else []

    # -- the hub, for the test -------------------------------------------------

    def _py(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            return self.py(value)
        except ValueError as e:
            raise InputError(str(e)) from None

    def _lua(self, value: Any) -> Any:
        return to_lua(self.runtime, value)

    def add_device(self, opts: Any) -> bytes:
        o = self._py(opts)
        device = self.hub.add_device(o.get("driver", self.driver_name), str(o.get("profile")), label=o.get("label"),
                                     network_id=o.get("network_id"), preferences=o.get("preferences"),
                                     device_id=o.get("id"), manufacturer=o.get("manufacturer"),
                                     model=o.get("model"), parent=o.get("parent"), child_key=o.get("child_key"))
        return device.id.encode()

    def remove_device(self, ref: bytes) -> None:
        self.hub.remove_device(as_text(ref))

    def update_device(self, ref: bytes, opts: Any) -> None:
        o = self._py(opts) or {}
        self.hub.update_device(as_text(ref), label=o.get("label"), preferences=o.get("preferences"),
                               profile=o.get("profile"))

    def command(self, ref: bytes, capability: bytes, command: bytes, args: Any, component: Any) -> None:
        self.hub.command(as_text(ref), as_text(capability), as_text(command), self._py(args),
                         component=as_text(component) if component else "main")

    def lifecycle(self, ref: bytes, event: bytes) -> None:
        self.hub.send_lifecycle(as_text(ref), as_text(event))

    def discover(self, driver: Any) -> None:
        self.hub.discover(as_text(driver) if driver else self.driver_name)

    def advance(self, seconds: float) -> None:
        self.hub.advance(float(seconds))

    def restart(self, kind: bytes) -> None:
        self.hub.restart(as_text(kind))

    def flush(self) -> None:
        self.hub.flush()

    def events(self, ref: Any) -> Any:
        device = self.hub.device(as_text(ref)).id if ref else None
        return self._lua([{"device": e.device, "device_id": e.device_id, "component": e.component,
                           "capability": e.capability, "attribute": e.attribute, "value": e.value, "unit": e.unit,
                           "state_change": e.state_change, "time": e.time}
                          for e in self.hub.events if device is None or e.device_id == device])

    def clear_events(self) -> None:
        self.hub.events.clear()

    def logs(self, level: Any) -> Any:
        wanted = as_text(level) if level else None
        return self._lua([{"level": r.level, "text": r.text, "device": r.device, "driver": r.driver}
                          for r in self.hub.logs if wanted is None or r.level == wanted])

    def datastore(self, driver: Any) -> Any:
        return self._lua(self.hub.store.load(as_text(driver) if driver else self.driver_name))

    def device(self, ref: bytes) -> Any:
        d = self.hub.device(as_text(ref))
        return self._lua({"id": d.id, "label": d.label, "profile": d.profile, "preferences": d.preferences,
                          "online": d.online, "driver": d.driver, "device_network_id": d.network_id,
                          "manufacturer": d.manufacturer, "model": d.model, "parent_device_id": d.parent_id,
                          "parent_assigned_child_key": d.child_key})

    def field(self, ref: bytes, name: bytes) -> Any:
        return self._lua(self.hub.saved_device_data(as_text(ref)).get(as_text(name)))

    def state_of(self, ref: bytes, capability: bytes, attribute: bytes, component: Any) -> Any:
        cache = self.hub.saved_device_data(as_text(ref)).get("__state_cache", {})
        entry = cache.get(as_text(component) if component else "main", {}).get(as_text(capability), {})
        return self._lua((entry.get(as_text(attribute)) or {}).get("value"))

    def fatal_errors(self, on: bool | None) -> None:
        self.hub.fatal_handler_errors = on is not False  # hub.fatal_errors() with no argument turns them on


    # -- the simulated LAN ------------------------------------------------------

    def lan_host(self, opts: Any) -> None:
        o = self._py(opts)
        http = o.get("http")
        for server in http if isinstance(http, list) else [http] if isinstance(http, dict) else []:
            # a route may be a Lua function of the request
            server["routes"] = {key: (self._lua_route(route) if self.lua_type(route) == "function" else route)
                                for key, route in (server.get("routes") or {}).items()}
        self.hub.lan.add_host(str(o.get("ip")), name=o.get("name"), http=http, ssdp=o.get("ssdp"),
                              mdns=o.get("mdns"))

    def _lua_route(self, fn: Any) -> Callable[[dict], dict]:
        def answer(request: dict) -> dict:
            response = self._py(fn(self._lua(request)))
            if not isinstance(response, dict):
                raise InputError(f"an HTTP route function returned {type(response).__name__}, not a response "
                                 "table ({status = 200, body = ...})")
            return response
        return answer

    def lan_fault(self, ip: bytes, fault: Any) -> None:
        self.hub.lan.set_fault(as_text(ip), as_text(fault) if fault else None)

    def lan_move(self, ip: bytes, new_ip: bytes) -> None:
        self.hub.lan.move_host(as_text(ip), as_text(new_ip))
        self.hub.settle()

    def lan_remove(self, ip: bytes) -> None:
        self.hub.lan.remove_host(as_text(ip))
        self.hub.settle()

    def lan_push(self, ip: bytes, path: bytes, text: bytes, raw: Any = None) -> int:
        """Sends text down the host's open event streams and WebSockets of `path` (then the driver
        runs); how many."""
        count = self.hub.lan.push(as_text(ip), as_text(path), text.decode("latin-1" if raw else "utf-8", "replace"),
                                  raw=bool(raw))
        self.hub.settle()
        return count

    def lan_close(self, ip: bytes, code: Any = None, reason: Any = None) -> int:
        """The host closes its WebSockets with a close frame (then the driver runs); how many."""
        count = self.hub.lan.close_websockets(as_text(ip), 1000 if code is None else int(code),
                                              as_text(reason) if reason else "")
        self.hub.settle()
        return count

    def lan_drop(self, ip: bytes) -> None:
        self.hub.lan.drop_streams(as_text(ip))
        self.hub.settle()

    def lan_notify(self, ip: bytes, body: bytes) -> int:
        """The host sends a UPnP event to its subscribers (then the drivers run); how many got it."""
        count = self.hub.lan.notify(as_text(ip), body.decode("latin-1"))
        self.hub.settle()
        return count

    def set_hub_ip(self, ip: bytes) -> None:
        self.hub.set_hub_ip(as_text(ip))

    def lan_requests(self, ip: Any) -> Any:
        return self._lua(self.hub.lan.requests(as_text(ip) if ip else None))

    def lan_sent(self, ip: Any) -> Any:
        return self.runtime.table_from([self.runtime.table_from({
            b"driver": s.driver.encode(), b"host": s.host.encode(), b"port": s.port, b"data": s.data})
            for s in self.hub.lan.sent if not ip or s.host == as_text(ip)])


class _LastLines:
    """A test's output (its prints, the hub's logs and events), of which the last `keep` lines are
    shown when it ends: a test that runs timers for a long virtual time would otherwise bury its
    failure under thousands of lines. All of it stays in `hub.logs()` and `hub.events()`."""

    def __init__(self, out: Callable[[str], None], keep: int = 1000) -> None:
        self._out = out
        self._lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._dropped = 0

    def add(self, line: str) -> None:
        if len(self._lines) == self._lines.maxlen:
            self._dropped += 1
        self._lines.append(line)

    def show(self) -> None:
        if self._dropped:
            self._out(f"... {self._dropped} earlier lines of output not shown (the last {len(self._lines)} follow)")
        for line in self._lines:
            self._out(line)


# Allocations after which Python collects its youngest generation while a Lua test runs (700
# otherwise). A test's two Lua states are freed only by the cyclic collector (lupa keeps the Python
# functions a state was given, and they refer back to it: ~400 objects in a cycle); a test seldom
# reaches this many, so one young collection at its end frees them, before they age into the
# oldest generation, whose collections walk the whole of pytest's heap (-1% of a test's
# instructions, and the memory comes back as each test ends).
YOUNG_GARBAGE = 50_000


@dataclass
class TestOptions:
    engine: str = "luajit"
    strict: bool = False
    handler_timeout: float = 2.0
    test_timeout: float = 60.0  # CPU seconds a test (and its setups) may run; 0: no limit
    out: Callable[[str], None] = print
    coverage: LineCoverage | None = None


@dataclass
class TestFile:
    path: Path
    package: Path = field(init=False)

    def __post_init__(self) -> None:
        package = package_of(self.path)
        if package is None:
            raise InputError(f"{self.path}: not inside a driver package (no config.yml above it)")
        self.package = package

    def _load(self, options: TestOptions, out: Callable[[str], None],
              wanted: str | None = None) -> tuple[LuaState, TestBridge]:
        """A fresh controller state with the file's top level run (which declares the tests; before
        running one, only that one is kept)."""
        catalogue = load_package(self.package, Catalogue.standard()).capabilities
        state = LuaState(options.engine, driver_src=self.package / "src", print_line=out,
                         interruptible=options.test_timeout > 0)
        bridge = TestBridge(state, catalogue, out, wanted)
        state.helpers.set_runtime_api(bridge.api())
        chunk, err = state.compile_file(self.path)
        if chunk is None:
            raise LuaTestFailure(err)
        try:  # (under the test time limit: a file's top level is test code too)
            state.protected(state.helpers.dispatch, options.test_timeout,
                            f"the top level of {self.path.name}".encode(), chunk)
        except LuaFailure as e:
            raise LuaTestFailure(e.message, e.traceback) from None
        return state, bridge

    def collect(self, options: TestOptions) -> list[DeclaredTest]:
        return self._load(options, options.out)[1].tests()

    def run(self, name: str, options: TestOptions) -> None:
        """Runs one test on a fresh hub; raises LuaTestFailure if it fails."""
        output = _LastLines(options.out)
        thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG_GARBAGE, *thresholds[1:])
        try:
            self._run(name, options, output.add)
        finally:
            gc.set_threshold(*thresholds)
            gc.collect(0)
            output.show()

    def _run(self, name: str, options: TestOptions, out: Callable[[str], None]) -> None:
        state, bridge = self._load(options, out, name)
        test = bridge.test(name)
        if test is None:
            raise LuaTestFailure(f"{self.path}: no test named {name!r} any more")
        with tempfile.TemporaryDirectory(prefix="test-", dir=_scratch()) as tmp:
            def show(record: LogRecord) -> None:
                device = f" {record.device}" if record.device else ""
                out(f"{record.time:9.3f} {record.level.upper():5} {record.driver}{device}  {record.text}")

            hub = Hub(Path(tmp) / "state", engine=options.engine, strict=options.strict, on_log=show,
                      handler_timeout=options.handler_timeout, coverage=options.coverage, durable=False, isolation="inline",
                      on_event=lambda e: out(f"{e.time:9.3f} EVENT {e.device} "
                                             f"{e.capability}.{e.attribute} = {e.value!r}"))
            bridge.hub = hub
            state.helpers.set_clock(hub.clock.epoch_seconds)  # the test's os.time() is the hub's too
            try:
                bridge.driver_name = hub.install(self.package).name
                timeout = options.test_timeout
                stopped = f"test {name!r} ran for more than {timeout:g} s and was stopped"
                for fn in [*bridge.setups(), test.fn]:
                    # the limit is kept twice: by a hook while Lua runs, by the hub while timers fire
                    hub.deadline = (time.process_time() + timeout, stopped) if timeout > 0 else None
                    try:
                        state.protected(state.helpers.dispatch, timeout, f"test {name!r}".encode(), fn)
                    except LuaFailure as e:
                        raise LuaTestFailure(e.message, e.traceback) from None
            except InputError as e:
                raise LuaTestFailure(str(e)) from None
            finally:
                bridge.hub = None
                hub.shutdown()
                if options.coverage is not None:
                    options.coverage.harvest()
