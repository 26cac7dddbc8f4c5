"""The simulated hub: the store on disk, the installed drivers, the devices, the clock.

Data flows one way: CLI -> Hub -> DriverHost (Lua state) -> Datastore -> Store.
The hub delivers lifecycle events, capability commands and timers to
drivers, one dispatch at a time; after each dispatch (a batch) a dirty
datastore is saved to the hub's memory, and saved snapshots are flushed to
disk every `flush_interval` seconds of hub time, on `commit` and on shutdown.
The three kinds of stop of spec/datastore.md section 4 are `restart(kind)`.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from hubrt.bridge import to_lua
from hubrt.capabilities import Catalogue, CapabilityError
from hubrt.coverage import LineCoverage
from hubrt.driver import DriverHost, DriverRuntime, Outcome
from hubrt.engine import DEFAULT_ENGINE, DEFAULT_MAX_MEMORY, LuaFailure
from hubrt.inputs import InputError
from hubrt.package import DriverPackage, load_package
from hubrt.store import Store, StoreError

STOP_KINDS = ("driver_crash", "graceful", "power_loss")
LIFECYCLE_EVENTS = ("init", "added", "doConfigure", "infoChanged", "driverSwitched", "removed")
DEFAULT_FLUSH_INTERVAL = 5.0
DEFAULT_HANDLER_TIMEOUT = 2.0
MAX_CRASHES_AT_START = 3


class HubError(InputError):
    """A request the hub refuses (unknown device, capability, driver...); the message says why."""


class StopRequested(Exception):
    """The hub was told to stop (SIGTERM, Ctrl-C), or ran past its `deadline`; raised between
    dispatches, never inside one."""


class HandlerError(Exception):
    """A driver handler failed while handler errors are fatal (tests ask for this)."""


@dataclass
class Device:
    id: str
    driver: str
    label: str
    profile: str
    network_id: str
    preferences: dict = field(default_factory=dict)
    online: bool = True


@dataclass
class Event:
    time: float
    driver: str
    device_id: str
    device: str
    component: str
    capability: str
    attribute: str
    value: Any
    unit: Any = None
    state_change: bool = True


@dataclass
class LogRecord:
    time: float
    level: str
    driver: str
    device: str | None
    text: str


class Clock:
    """Hub time in seconds. Virtual time moves only when told (tests, scenarios);
    real time follows the wall clock."""

    def __init__(self, real: bool = False) -> None:
        self.real = real
        self._start = time.monotonic()
        self._epoch = time.time()  # the wall time when the hub started
        self._virtual = 0.0

    def now(self) -> float:
        return time.monotonic() - self._start if self.real else self._virtual

    def epoch_seconds(self) -> float:
        """Hub time as the wall time it stands for: what drivers' os.time() answers."""
        return self._epoch + self.now()

    def wait_until(self, t: float) -> None:
        if self.real:
            time.sleep(max(0.0, t - self.now()))
        else:
            self._virtual = max(self._virtual, t)


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    id: int = field(compare=False)
    driver: str = field(compare=False)
    interval: float | None = field(compare=False)
    name: str | None = field(compare=False)


def _print_log(record: LogRecord) -> None:
    device = f" {record.device}" if record.device else ""
    print(f"{record.time:9.3f} {record.level.upper():5} {record.driver}{device}  {record.text}", file=sys.stderr)


class Hub:
    def __init__(
        self,
        state_dir: Path | str,
        *,
        engine: str = DEFAULT_ENGINE,
        strict: bool = False,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        start_empty: bool = False,
        clock: Clock | None = None,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        handler_timeout: float = DEFAULT_HANDLER_TIMEOUT,
        fatal_handler_errors: bool = False,
        print_line: Callable[[str], None] = print,
        on_log: Callable[[LogRecord], None] = _print_log,
        on_event: Callable[[Event], None] | None = None,
        coverage: LineCoverage | None = None,
        durable: bool = True,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.engine = engine
        self.strict = strict
        self.max_memory = max_memory
        self.clock = clock or Clock()
        self.flush_interval = flush_interval
        self.handler_timeout = handler_timeout
        self.fatal_handler_errors = fatal_handler_errors
        self.print_line = print_line
        self.on_log = on_log
        self.on_event = on_event
        self.coverage = coverage  # records the lines driver code runs, when given
        self._durable = durable
        self.store = Store(state_dir, start_empty=start_empty, durable=durable)
        self.drivers: dict[str, DriverHost | DriverRuntime] = {}
        self.packages: dict[str, DriverPackage] = {}
        self.devices: dict[str, Device] = {}
        self.events: list[Event] = []
        self.logs: list[LogRecord] = []
        self._timers: dict[int, _Timer] = {}
        self._queue: list[_Timer] = []
        self._timer_ids = itertools.count(1)
        self._last_flush = self.clock.now()
        self._current_device: str | None = None
        self._pending_creations: list[tuple] = []  # try_create_device calls, served after the dispatch
        self._crashes: dict[str, int] = {}  # crashes in a row, per driver
        self.stop_requested = False  # set from a signal handler; honoured between dispatches
        # (process CPU time, message): a Lua test's time limit, for the loops of timers it runs in Python
        self.deadline: tuple[float, str] | None = None
        self._load_devices()

    # -- the log stream ----------------------------------------------------

    def log(self, level: str, driver: str, text: str) -> None:
        device = self.devices.get(self._current_device) if self._current_device else None
        record = LogRecord(self.clock.now(), level, driver, device.label if device else None, text)
        self.logs.append(record)
        self.on_log(record)

    # -- drivers -------------------------------------------------------------

    def install(self, path: Path | str) -> DriverHost:
        """Installs a driver package and starts it; its devices get `init`."""
        package = load_package(path, Catalogue.standard())
        if package.package_key in self.packages:
            raise HubError(f"{path}: a driver with packageKey {package.package_key!r} is already installed "
                           f"(from {self.packages[package.package_key].path})")
        self.packages[package.package_key] = package
        return self._start(package)

    def _start(self, package: DriverPackage) -> DriverHost:
        for _ in range(MAX_CRASHES_AT_START):
            driver = DriverHost(self, package)
            self.drivers[package.package_key] = driver
            outcome = driver.start()
            if outcome.ok:
                for device in self.devices_of(package.package_key):
                    self._lifecycle(device, "init")
                    if self.drivers.get(package.package_key) is not driver:
                        # it crashed in `init` and was started again, devices and all
                        return self.drivers.get(package.package_key)
                return driver
            self._report(driver, "src/init.lua", outcome)
            self._forget_timers(package.package_key)
            if outcome.kind == "syntax":  # trying again cannot help
                raise HubError(f"driver {package.package_key!r} cannot start: fix the syntax error above")
        raise HubError(f"driver {package.package_key!r} crashed {MAX_CRASHES_AT_START} times while starting; "
                       "see the errors above")

    def _report(self, driver: DriverHost, what: str, outcome: Outcome) -> None:
        detail = outcome.traceback or outcome.message
        if outcome.crashed:
            self.log("error", driver.name, f"driver crash in {what}: {detail}")
        else:
            self.log("error", driver.name, f"error in {what}: {detail}")

    def check_stop(self) -> None:
        if self.stop_requested:
            raise StopRequested("the hub was told to stop")
        if self.deadline is not None and time.process_time() > self.deadline[0]:
            raise StopRequested(self.deadline[1])

    def _dispatch(self, driver: DriverHost, what: str, device_id: str | None, method: str, *args: Any) -> Outcome:
        """Delivers one event to a driver: a batch, after which its datastore is saved."""
        self.check_stop()
        self._current_device = device_id
        try:
            outcome = driver.call(self.handler_timeout, what, method, *args)
        finally:
            self._current_device = None
        if outcome.crashed:
            self._report(driver, what, outcome)
            self.crash_driver(driver.name)
            return outcome
        if outcome.ok:
            self._crashes.pop(driver.name, None)
        else:
            self._report(driver, what, outcome)
            if self.fatal_handler_errors:
                raise HandlerError(f"{what}: {outcome.traceback or outcome.message}")
        driver.datastore.save()
        self._maybe_flush()
        return outcome

    def _maybe_flush(self) -> None:
        if self.clock.now() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        self.store.flush()
        self._last_flush = self.clock.now()

    def _driver(self, name: str) -> DriverHost:
        driver = self.drivers.get(name)
        if not isinstance(driver, DriverHost):
            raise HubError(f"no driver {name!r} is installed" + (
                f"; installed: {', '.join(self.packages)}" if self.packages else ""))
        return driver

    # -- devices -----------------------------------------------------------

    def _load_devices(self) -> None:
        for record in self.store.devices():
            try:
                device = Device(**record)
            except TypeError as e:
                raise StoreError(f"{self.store.path}: a device record does not fit this hubrt ({e}): "
                                 f"{record!r}") from None
            self.devices[device.id] = device

    def devices_of(self, driver: str) -> list[Device]:
        return [d for d in self.devices.values() if d.driver == driver]

    def device(self, ref: str) -> Device:
        """A device by id or label."""
        if ref in self.devices:
            return self.devices[ref]
        matches = [d for d in self.devices.values() if d.label == ref]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise HubError(f"{len(matches)} devices are labelled {ref!r}; use the device id")
        known = ", ".join(repr(d.label) for d in self.devices.values()) or "none"
        raise HubError(f"no device {ref!r} (devices: {known})")

    def saved_device_data(self, ref: str) -> dict:
        """A device's persisted data (the seed's `"__" .. id` table) as its driver last saved it."""
        device = self.device(ref)
        return self.store.load(device.driver).get("__" + device.id) or {}

    def _save_device(self, device: Device) -> None:
        record = asdict(device)
        self.store.put_device(device.id, record)

    def add_device(self, driver: str, profile: str, label: str | None = None, network_id: str | None = None,
                   preferences: dict | None = None, device_id: str | None = None) -> Device:
        """Adds a device owned by `driver`: it gets `init`, `added` and `doConfigure`."""
        host = self._driver(driver)
        if profile not in host.package.profiles:
            raise HubError(f"driver {driver!r} has no profile {profile!r}; profiles: "
                           + ", ".join(host.package.profiles))
        device_id = device_id or str(uuid.uuid4())
        if device_id in self.devices:
            raise HubError(f"a device with id {device_id!r} already exists")
        prefs = host.package.profiles[profile].default_preferences()
        prefs.update(preferences or {})
        device = Device(device_id, driver, label or profile, profile, network_id or device_id, prefs)
        self.devices[device_id] = device
        self._save_device(device)
        for event in ("init", "added", "doConfigure"):
            self._lifecycle(device, event)
        return device

    def create_device_from_driver(self, driver: DriverHost, meta: dict) -> str | None:
        """try_create_device from driver code (e.g. discovery); returns a problem, or None."""
        profile = meta.get("profile")
        if profile not in driver.package.profiles:
            return f"try_create_device: unknown profile {profile!r}; profiles: {', '.join(driver.package.profiles)}"
        network_id = meta.get("device_network_id")
        if network_id and any(d.network_id == network_id and d.driver == driver.name for d in self.devices.values()):
            return None  # the hub ignores a second create for the same network id
        self._pending_creations.append((driver.name, profile, meta.get("label"), network_id))
        return None

    def _create_pending(self) -> None:
        while self._pending_creations:
            driver, profile, label, network_id = self._pending_creations.pop(0)
            self.add_device(driver, profile, label=label, network_id=network_id)

    def _lifecycle(self, device: Device, event: str, args: dict | None = None) -> Outcome:
        host = self._driver(device.driver)
        outcome = self._dispatch(host, f"lifecycle {event} for {device.label}", device.id, "_on_device_lifecycle",
                                 device.id.encode(), event.encode(),
                                 to_lua(host.state.runtime, args) if args else None)
        self._create_pending()
        return outcome

    def send_lifecycle(self, ref: str, event: str) -> Outcome:
        """Delivers one lifecycle event (init, added, doConfigure, ...) to a device's driver."""
        if event not in LIFECYCLE_EVENTS:
            raise HubError(f"unknown lifecycle event {event!r}; events: {', '.join(LIFECYCLE_EVENTS)}")
        if event == "removed":
            self.remove_device(ref)
            return Outcome("ok")
        return self._lifecycle(self.device(ref), event)

    def remove_device(self, ref: str) -> None:
        device = self.device(ref)
        self._lifecycle(device, "removed")
        del self.devices[device.id]
        self.store.delete_device(device.id)

    def update_device(self, ref: str, label: str | None = None, preferences: dict | None = None) -> Device:
        """Changes a device's label or preferences: the driver gets `infoChanged`."""
        device = self.device(ref)
        if label is not None:
            device.label = label
        if preferences:
            device.preferences = {**device.preferences, **preferences}
        self._save_device(device)
        self._lifecycle(device, "infoChanged")
        return device

    def set_online(self, device_id: str, online: bool) -> None:
        device = self.devices.get(device_id)
        if device is not None and device.online != online:
            device.online = online
            self._save_device(device)
            self.log("info", device.driver, f"{device.label} is {'online' if online else 'offline'}")

    def command(self, ref: str, capability: str, command: str, args: Any = None,
                component: str = "main") -> Outcome:
        """Sends a capability command to a device, checked against its profile and the capability."""
        device = self.device(ref)
        host = self._driver(device.driver)
        components = host.package.profiles[device.profile].components
        if component not in components:
            raise HubError(f"device {device.label!r} has no component {component!r}")
        if capability not in components[component]:
            raise HubError(f"device {device.label!r} does not support capability {capability!r} "
                           f"on component {component!r}"
                           + host.package.capabilities.suggestion(capability, components[component]))
        try:
            named = host.package.capabilities.command_args(capability, command, args)
        except CapabilityError as e:
            raise HubError(str(e)) from None
        runtime = host.state.runtime
        outcome = self._dispatch(host, f"capability {capability}.{command} for {device.label}", device.id,
                                 "_on_capability_command", device.id.encode(), capability.encode(),
                                 component.encode(), command.encode(),
                                 to_lua(runtime, named) if named else None,
                                 to_lua(runtime, list(named.values())) if named else None)
        self._create_pending()
        return outcome

    def discover(self, driver: str) -> None:
        host = self._driver(driver)
        self._dispatch(host, "discovery", None, "_on_discovery")
        self._create_pending()

    def record_event(self, driver: DriverHost, device_id: str, component: str, capability: str, attribute: str,
                     value: Any, unit: Any, state_change: bool) -> None:
        device = self.devices.get(device_id)
        record = Event(self.clock.now(), driver.name, device_id, device.label if device else device_id,
                       component, capability, attribute, value, unit, state_change)
        self.events.append(record)
        if self.on_event is not None:
            self.on_event(record)

    # -- timers and time ------------------------------------------------------

    def start_timer(self, driver: DriverHost, seconds: float, repeating: bool, name: str | None) -> int:
        timer = _Timer(self.clock.now() + seconds, next(self._timer_ids), 0, driver.name,
                       seconds if repeating else None, name)
        timer.id = timer.seq
        self._timers[timer.id] = timer
        heapq.heappush(self._queue, timer)
        return timer.id

    def cancel_timer(self, timer_id: int) -> None:
        self._timers.pop(timer_id, None)

    def _forget_timers(self, driver: str) -> None:
        for timer_id in [t.id for t in self._timers.values() if t.driver == driver]:
            del self._timers[timer_id]

    def advance(self, seconds: float) -> None:
        """Moves hub time forward, firing due timers in order (real time: waits)."""
        end = self.clock.now() + seconds
        while self._queue and self._queue[0].due <= end:
            timer = heapq.heappop(self._queue)
            if self._timers.get(timer.id) is not timer:
                continue  # cancelled
            self.clock.wait_until(timer.due)
            if timer.interval is None:
                del self._timers[timer.id]
            else:
                timer.due += max(timer.interval, 0.001)
                heapq.heappush(self._queue, timer)
            driver = self.drivers.get(timer.driver)
            if isinstance(driver, DriverHost):
                what = f"timer {timer.name}" if timer.name else f"timer {timer.id}"
                self._dispatch(driver, what, None, "_on_timer", timer.id)
                self._create_pending()
        self.clock.wait_until(end)
        self._maybe_flush()

    # -- the three kinds of stop ----------------------------------------------

    def crash_driver(self, name: str) -> None:
        """Driver crash: unsaved changes die with the Lua state; the hub restarts
        a packaged driver from its saved data and sends `init` to its devices."""
        self.drivers.pop(name, None)
        self._forget_timers(name)
        if name not in self.packages:
            return
        self._crashes[name] = self._crashes.get(name, 0) + 1
        if self._crashes[name] > MAX_CRASHES_AT_START:
            self.log("error", name, f"the driver crashed {self._crashes[name]} times in a row; not restarting it")
            return
        self.log("warn", name, "restarting the driver after a crash")
        self._start(self.packages[name])

    def _stop_drivers(self) -> None:
        """Every driver is told `shutdown`, its main chunk ends, and it force-saves."""
        for driver in list(self.drivers.values()):
            if isinstance(driver, DriverHost) and driver.lua_driver is not None:
                outcome = driver.call(self.handler_timeout, "driver_lifecycle shutdown", "_on_driver_lifecycle",
                                      b"shutdown")
                if not outcome.ok:
                    self._report(driver, "driver_lifecycle shutdown", outcome)
                outcome = driver.finish()
                if not outcome.ok:
                    self._report(driver, "src/init.lua after driver:run()", outcome)
            driver.datastore.force_save()
        self.drivers.clear()
        self._timers.clear()
        self._queue.clear()

    def shutdown(self) -> None:
        """Graceful stop: nothing is lost. (A second call does nothing.)"""
        if self.store.closed:
            return
        self._stop_drivers()
        self.store.close()

    def lose_power(self) -> None:
        """Power cut: only what was flushed to disk survives."""
        self.drivers.clear()
        self._timers.clear()
        self._queue.clear()
        if not self.store.closed:
            self.store.lose_power()

    def restart(self, kind: str) -> None:
        """Stops the hub (or its drivers) in one of the three ways and starts again from what survived."""
        if kind not in STOP_KINDS:
            raise HubError(f"unknown kind of restart {kind!r}; choose one of {', '.join(STOP_KINDS)}")
        self.log("info", "hub", f"restart: {kind.replace('_', ' ')}")
        if kind == "driver_crash":
            for name in list(self.drivers):
                self.crash_driver(name)
            return
        if kind == "graceful":
            self.shutdown()
        else:
            self.lose_power()
        self.store = Store(self.state_dir, durable=self._durable)
        self.devices.clear()
        self._load_devices()
        self._last_flush = self.clock.now()
        for package in self.packages.values():
            self._start(package)

    # -- standalone scripts (`hubrt lua`) -------------------------------------

    def start_driver(self, name: str, src_dir: Path | None = None) -> DriverRuntime:
        """Starts (or restarts) a bare driver runtime (no package) from its saved snapshot."""
        driver = DriverRuntime(
            name, self.store, engine=self.engine, strict=self.strict, max_memory=self.max_memory,
            src_dir=src_dir, print_line=self.print_line, warn=lambda text: self.log("warn", name, text),
        )
        self.drivers[name] = driver
        return driver

    def run_script(self, path: Path, name: str | None = None) -> None:
        """Runs a standalone Lua file as a one-driver hub.

        A normal end is a graceful stop of that driver (its datastore is saved);
        an uncaught error is a driver crash (unsaved changes are lost) and
        re-raises the LuaFailure.
        """
        driver = self.start_driver(name or path.stem, src_dir=path.parent)
        try:
            driver.run_file(path)
        except LuaFailure:
            self.crash_driver(driver.name)
            raise
        driver.datastore.save()
