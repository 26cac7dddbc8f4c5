"""The simulated hub: the store on disk, the installed drivers, the devices, the clock.

Data flows one way: CLI -> Hub -> driver worker (Lua state, datastore) -> Store.
Each driver runs in a worker of its own (worker.py): a process under `hubrt
run`, so that nothing a driver does can take the hub or another driver down.
The hub delivers lifecycle events, capability commands and timers to
drivers, one dispatch at a time; after each batch of dispatches (what the
worker found queued) a dirty datastore is saved to the hub's memory, before
the batch's last reply, and saved snapshots are flushed to
disk every `flush_interval` seconds of hub time, on `commit` and on shutdown.
The three kinds of stop of spec/datastore.md section 4 are `restart(kind)`.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hubrt.capabilities import Catalogue, CapabilityError
from hubrt.clock import Clock, Timers
from hubrt.coverage import LineCoverage
from hubrt.driver import DriverOptions, DriverRuntime, Outcome
from hubrt.engine import DEFAULT_ENGINE, DEFAULT_MAX_MEMORY, LuaFailure
from hubrt.inputs import preferences_problem, valid_seconds
from hubrt.net.hub_side import HubNetwork
from hubrt.package import DriverPackage, load_package
from hubrt.devices import Device, Devices, HubError
from hubrt.history import History
from hubrt.store import Store, StoreError
from hubrt.worker import InlineWorker, ProcessWorker, WorkerHandle, completion

STOP_KINDS = ("driver_crash", "graceful", "power_loss")
LIFECYCLE_EVENTS = ("init", "added", "doConfigure", "infoChanged", "driverSwitched", "removed")
DEFAULT_FLUSH_INTERVAL = 5.0
DEFAULT_HANDLER_TIMEOUT = 2.0
MAX_CRASHES_AT_START = 3
ISOLATIONS = ("process", "inline")


def _check_preferences(preferences: dict | None) -> None:
    problem = preferences_problem(preferences or {})
    if problem:
        raise HubError(problem)


class StopRequested(Exception):
    """The hub was told to stop (SIGTERM, Ctrl-C), or ran past its `deadline`; raised between
    dispatches, never inside one."""


class HandlerError(Exception):
    """A driver handler failed while handler errors are fatal (tests ask for this)."""


@dataclass(slots=True)  # (made for every event a driver emits)
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
        isolation: str = "process",
        capability_dirs: tuple[str, ...] = (),
        network: str = "simulated",
    ) -> None:
        """`isolation`: "process" runs each driver in a worker process of its own; "inline" keeps
        the workers in this process (Lua tests: cheaper, and the same messages). `network`:
        "simulated" (the hub's LAN, `self.lan`) or "real" (each worker's own sockets; a real
        clock and worker processes)."""
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
        if network == "real" and (isolation != "process" or not (clock and clock.real)):
            raise HubError("the real network needs the real clock and a worker process per driver")
        self.isolation = isolation
        self.network = network
        self.catalogue = Catalogue.standard(tuple(str(d) for d in capability_dirs))
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
        self.drivers: dict[str, WorkerHandle | DriverRuntime] = {}
        self.packages: dict[str, DriverPackage] = {}
        self.devices = Devices()
        self.events: History[Event] = History()
        self.logs: History[LogRecord] = History()
        self.timers = Timers()
        self._last_flush = self.clock.now()
        self._current_device: str | None = None
        # what drivers asked of the hub (devices to create or change, commands to inject), done once the
        # dispatch that asked is over
        self._deferred: list[Callable[[], Any]] = []
        self.net = HubNetwork(network, self._post_net, self._deferred.append)
        self.lan = self.net.lan
        self._crashes: dict[str, int] = {}  # crashes in a row, per driver
        self.stop_requested = False  # set from a signal handler; honoured between dispatches
        # (process CPU time, message): a Lua test's time limit, for the loops of timers it runs in Python
        self.deadline: tuple[float, str] | None = None
        self.devices.load(self.store)

    # -- the log stream ----------------------------------------------------

    def log(self, level: str, driver: str, text: str) -> None:
        device = self.devices.get(self._current_device) if self._current_device else None
        record = LogRecord(self.clock.now(), level, driver, device.label if device else None, text)
        self.logs.append(record)
        self.on_log(record)
        if self.logs.dropped == 1:  # (they were all shown as they came)
            self.log("warn", driver, f"the hub keeps its last {self.logs.maxlen:,} log lines: older ones are "
                                     "let go from hub.logs()")

    # -- drivers -------------------------------------------------------------

    def install(self, path: Path | str) -> WorkerHandle:
        """Installs a driver package and starts it; its devices get `init`."""
        package = load_package(path, self.catalogue, strict=self.strict)
        if package.package_key in self.packages:
            raise HubError(f"{path}: a driver with packageKey {package.package_key!r} is already installed "
                           f"(from {self.packages[package.package_key].path})")
        self.packages[package.package_key] = package
        for warning in package.warnings:
            self.log("warn", package.package_key, warning)
        self._start(package)
        self.settle()
        return self._driver(package.package_key)

    def _new_worker(self, package: DriverPackage) -> WorkerHandle:
        options = DriverOptions(self.engine, self.strict, self.max_memory, self.handler_timeout, self.network,
                                watched=self.isolation == "process")
        args = (package.package_key, package, options, self._serve, self._stopping)
        return ProcessWorker(*args) if self.isolation == "process" else InlineWorker(*args, coverage=self.coverage)

    def _message(self, op: str, **fields: Any) -> dict:
        return {"op": op, "now": self.clock.epoch_seconds(), "real": self.clock.real, **fields}

    def _start(self, package: DriverPackage) -> None:
        """Starts a driver's worker and sends its devices `init`; a driver that crashes while
        starting is tried again, up to MAX_CRASHES_AT_START times."""
        name = package.package_key
        for _ in range(MAX_CRASHES_AT_START):
            self.check_stop()  # a hub that is stopping starts no driver (again)
            driver = self._new_worker(package)
            self.drivers[name] = driver
            self.devices.stale.discard(name)
            done = driver.call(self._message("start", what="src/init.lua", devices=self.devices.records(name),
                                             environment=self.net.environment))
            outcome = done.outcome
            for what, failure in done.reports:  # tasks the main chunk started
                self._report(name, what, failure)
            if outcome.kind == "store":
                driver.kill()
                self.drivers.pop(name, None)
                raise StoreError(outcome.message)
            if outcome.ok:
                for device in self.devices.of(package.package_key):
                    self._lifecycle(device, "init")
                    if self.drivers.get(package.package_key) is not driver:
                        return  # it crashed in `init` and was started again, devices and all
                return
            self._report(name, "src/init.lua", outcome)
            driver.kill()
            self.drivers.pop(name, None)
            self.timers.forget(name)
            if outcome.kind == "syntax":  # trying again cannot help
                raise HubError(f"driver {package.package_key!r} cannot start: fix the syntax error above")
        raise HubError(f"driver {package.package_key!r} crashed {MAX_CRASHES_AT_START} times while starting; "
                       "see the errors above")

    def _report(self, driver: str, what: str, outcome: Outcome) -> None:
        detail = outcome.traceback or outcome.message
        if outcome.crashed:
            self.log("error", driver, f"driver crash in {what}: {detail}")
        else:
            self.log("error", driver, f"error in {what}: {detail}")

    def _stopping(self) -> bool:
        """Whether the hub was told to stop: what workers and real-time waits check."""
        return self.stop_requested

    def check_stop(self) -> None:
        if self.stop_requested:
            raise StopRequested("the hub was told to stop")
        if self.deadline is not None and time.process_time() > self.deadline[0]:
            raise StopRequested(self.deadline[1])

    def _dispatch(self, driver: WorkerHandle, what: str, device_id: str | None, op: str, **fields: Any) -> None:
        """Posts one event to a driver: a batch, after which its worker saves its datastore. Delivery
        is asynchronous, as on a hub; `wait` (or `settle`) waits for the driver to be done."""
        self.check_stop()
        if driver.name in self.devices.stale:
            self.devices.stale.discard(driver.name)
            driver.notify({"op": "devices", "devices": self.devices.records(driver.name)})
        self.net.tell(driver)
        self._finish(driver, driver.post(self._message(op, what=what, **fields), device_id))
        if self.fatal_handler_errors:
            self.settle()

    def settle(self) -> None:
        """Waits until every driver is idle, taking in what they did and what they asked for, and
        running the timers already due; virtual time moves only after this."""
        busy = True
        while busy:  # what one driver did (a device created, a crash) may give another work
            busy = False
            for driver in list(self.drivers.values()):
                if isinstance(driver, WorkerHandle):
                    done = driver.settle()
                    busy = busy or bool(done)
                    self._finish(driver, done)
            if self._deferred:
                busy = True
                self._run_deferred()
            elif not busy:  # timers already due (a zero delay, a queued event) run now, as on a hub
                timer = self.timers.pop_due(self.clock.now())
                if timer is not None:
                    busy = True
                    self._fire(timer)

    def _finish(self, driver: WorkerHandle, completions: list) -> None:
        """Takes in dispatches a driver finished: errors are logged, a crash restarts it."""
        for done in completions:
            outcome = done.outcome
            if outcome.crashed:
                for what, failure in done.reports:
                    self._report(driver.name, what, failure)
                self._report(driver.name, done.what, outcome)
                self.crash_driver(driver.name)
                return  # whatever else it was sent died with it
            if outcome.ok:
                self._crashes.pop(driver.name, None)
            # the dispatch itself, then the events and tasks that failed while it ran
            for what, failure in ([] if outcome.ok else [(done.what, outcome)]) + done.reports:
                self._report(driver.name, what, failure)
                if self.fatal_handler_errors:
                    raise HandlerError(f"{what}: {failure.traceback or failure.message}")
        if completions:
            self._maybe_flush()

    def _serve(self, driver: str, m: dict, device: str | None) -> Any:
        """What a driver's worker tells the hub or asks of it (worker.HubLink) while it handles an
        event for `device`."""
        self._current_device = device
        try:
            return self._answer(driver, m)
        finally:
            self._current_device = None

    def _answer(self, driver: str, m: dict) -> Any:
        op = m["op"]
        if op == "log":
            if m.get("device"):  # device.log: about that device, whatever is being handled
                self._current_device = m["device"]
            self.log(m["level"], driver, m["text"])
        elif op == "print":
            self.print_line(m["text"])
        elif op == "emit":
            self.record_event(driver, *m["event"])
        elif op == "save":
            self.store.save(driver, m["changes"])
        elif op == "timer_start":
            self.start_timer(driver, m["id"], m["seconds"], m["repeating"], m["name"])
        elif op == "timer_cancel":
            self.timers.cancel(driver, m["id"])
        elif op == "set_online":
            self.set_online(m["device"], m["online"])
        elif op == "create_device":
            self.create_device_from_driver(driver, m["meta"])
        elif op == "update_metadata":
            self.update_metadata_from_driver(driver, m["device"], m["meta"])
        elif op == "inject":
            self.inject_from_driver(driver, m["device"], m["capability"], m["command"], m["args"])
        elif op == "net":
            return self.net.call(driver, m)
        elif op == "net_connect":
            self.net.connected(driver, m)
        elif op == "net_close":
            self.lan.call(driver, {**m, "call": "close"})
        elif op == "local_done":  # the worker ran what its real sockets got, between the hub's dispatches
            handle = self.drivers.get(driver)
            if isinstance(handle, WorkerHandle):
                done = completion("network", m)
                self._deferred.append(lambda: self._finish(handle, [done]))
        elif op in ("flush", "load"):
            try:
                if op == "flush":
                    self.store.flush()
                    return {"ok": True}
                return {"snapshot": self.store.load(driver)}
            except StoreError as e:
                return {"error": str(e)}
        return None

    def _maybe_flush(self) -> None:
        if self.clock.now() - self._last_flush >= self.flush_interval:
            self._flush()

    def flush(self) -> None:
        """Writes what every driver has saved to disk, once they are idle."""
        self.settle()
        self._flush()

    def _flush(self) -> None:
        self.store.flush()
        self._last_flush = self.clock.now()

    def _driver(self, name: str) -> WorkerHandle:
        driver = self.drivers.get(name)
        if not isinstance(driver, WorkerHandle):
            raise HubError(f"no driver {name!r} is installed" + (
                f"; installed: {', '.join(self.packages)}" if self.packages else ""))
        return driver

    # -- devices -----------------------------------------------------------

    def device(self, ref: str) -> Device:
        """A device by id or label."""
        return self.devices.find(ref)

    def saved_device_data(self, ref: str) -> dict:
        """A device's persisted data (the seed's `"__" .. id` table) as its driver last saved it."""
        device = self.device(ref)
        return self.store.load(device.driver).get("__" + device.id) or {}

    def add_device(self, driver: str, profile: str, label: str | None = None, network_id: str | None = None,
                   preferences: dict | None = None, device_id: str | None = None, manufacturer: str | None = None,
                   model: str | None = None, parent: str | None = None, child_key: str | None = None) -> Device:
        """Adds a device owned by `driver`: it gets `added` (its driver library then runs `init`, as the
        hub's does for a device it had not seen) and `doConfigure`. With `parent` (a device of the same
        driver) it is that device's child, `child_key` its parent-assigned key."""
        host = self._driver(driver)
        parent_id = None
        if parent is not None:
            parent_device = self.device(parent)
            if parent_device.driver != driver:
                raise HubError(f"a child device belongs to its parent's driver ({parent_device.driver!r}), "
                               f"not {driver!r}")
            parent_id = parent_device.id
        if profile not in host.package.profiles:
            raise HubError(f"driver {driver!r} has no profile {profile!r}; profiles: "
                           + ", ".join(host.package.profiles))
        device_id = device_id or str(uuid.uuid4())
        if device_id in self.devices:
            raise HubError(f"a device with id {device_id!r} already exists")
        _check_preferences(preferences)
        prefs = host.package.profiles[profile].default_preferences()
        prefs.update(preferences or {})
        device = Device(device_id, driver, label or profile, profile, network_id or device_id, prefs,
                        manufacturer=manufacturer or "", model=model or "", parent_id=parent_id,
                        child_key=None if child_key is None else str(child_key))
        self.devices.save(self.store, device)
        for event in ("added", "doConfigure"):
            self._lifecycle(device, event)
        self.settle()
        return device

    def create_device_from_driver(self, driver: str, meta: dict) -> None:
        """try_create_device from driver code (e.g. discovery; its worker checked the profile). A second
        create for the same network id, or the same parent and child key, is ignored, as on the hub."""
        network_id, parent_id = meta.get("device_network_id"), meta.get("parent_device_id")
        key = meta.get("parent_assigned_child_key")
        for d in self.devices.values():
            if d.driver == driver and ((network_id and d.network_id == network_id)
                                       or (parent_id and d.parent_id == parent_id and d.child_key == key)):
                return
        self._deferred.append(lambda: self.add_device(
            driver, meta.get("profile"), label=meta.get("label") or meta.get("vendor_provided_label"),
            network_id=network_id, manufacturer=meta.get("manufacturer"), model=meta.get("model"),
            parent=parent_id, child_key=key))

    def update_metadata_from_driver(self, driver: str, device_id: str, meta: dict) -> None:
        """device:try_update_metadata: a new profile (capabilities read again), label, model..."""
        def update() -> None:
            device = self.devices.get(device_id)
            if device is None or device.driver != driver:
                return
            for name in ("manufacturer", "model"):
                if isinstance(meta.get(name), str):
                    setattr(device, name, meta[name])
            self.update_device(device_id, label=meta.get("vendor_provided_label"), profile=meta.get("profile"))
        self._deferred.append(update)

    def inject_from_driver(self, driver: str, device_id: str, capability: str, command: str, args: Any) -> None:
        """driver:inject_capability_command: delivered like any command, after the current dispatch."""
        self._deferred.append(lambda: self.command(device_id, capability, command, args or None, wait=False))

    def has_idle_work(self) -> bool:
        """Whether a timer is due or a worker has said something on its own: what `advance(0)` would
        take in (the prompt asks this while nobody types)."""
        return self.timers.any_due(self.clock.now()) or any(
            isinstance(driver, WorkerHandle) and driver.has_news() for driver in self.drivers.values())

    def _poll_workers(self) -> None:
        """While the hub waits in real time: what idle workers did on their own (real sockets)."""
        for driver in list(self.drivers.values()):
            if isinstance(driver, WorkerHandle):
                self._finish(driver, driver.poll())
        if self._deferred:
            self.settle()

    def _post_net(self, name: str, events: list[dict]) -> None:
        """What the LAN sent a driver's sockets, as one dispatch."""
        driver = self.drivers.get(name)
        if isinstance(driver, WorkerHandle):
            self._dispatch(driver, "network", None, "net", events=events)

    def _run_deferred(self) -> None:
        while self._deferred:
            action = self._deferred.pop(0)
            try:
                action()
            except HubError as e:  # what the driver asked for cannot be done: it is told in its log
                self.log("error", "hub", f"a driver's request failed: {e}")

    def _lifecycle(self, device: Device, event: str, args: dict | None = None) -> None:
        self._dispatch(self._driver(device.driver), f"lifecycle {event} for {device.label}", device.id,
                       "lifecycle", device=device.id, event=event, args=args)

    def send_lifecycle(self, ref: str, event: str) -> None:
        """Delivers one lifecycle event (init, added, doConfigure, ...) to a device's driver."""
        if event not in LIFECYCLE_EVENTS:
            raise HubError(f"unknown lifecycle event {event!r}; events: {', '.join(LIFECYCLE_EVENTS)}")
        if event == "removed":
            self.remove_device(ref)
            return
        self._lifecycle(self.device(ref), event)
        self.settle()

    def remove_device(self, ref: str) -> None:
        """Removes a device (its children first, as the hub does): its driver gets `removed`."""
        device = self.device(ref)
        for child in self.devices.children(device.id):
            self.remove_device(child.id)
        self._lifecycle(device, "removed")
        self.devices.delete(self.store, device)
        self.settle()

    def update_device(self, ref: str, label: str | None = None, preferences: dict | None = None,
                      profile: str | None = None) -> Device:
        """Changes a device's label, preferences or profile: the driver gets `infoChanged`."""
        device = self.device(ref)
        _check_preferences(preferences)
        if profile is not None:
            profiles = self.packages[device.driver].profiles
            if profile not in profiles:
                raise HubError(f"driver {device.driver!r} has no profile {profile!r}; profiles: {', '.join(profiles)}")
            device.profile = profile
        if label is not None:
            device.label = label
        if preferences:
            device.preferences = {**device.preferences, **preferences}
        self.devices.save(self.store, device)
        self._lifecycle(device, "infoChanged")
        self.settle()
        return device

    def set_online(self, device_id: str, online: bool) -> None:
        device = self.devices.get(device_id)
        if device is not None and device.online != online:
            device.online = online
            self.devices.save(self.store, device)
            self.log("info", device.driver, f"{device.label} is {'online' if online else 'offline'}")

    def command(self, ref: str, capability: str, command: str, args: Any = None,
                component: str = "main", wait: bool = True) -> None:
        """Sends a capability command to a device, checked against its profile and the capability.
        `wait=False` returns once the command is queued to the driver (see `settle`)."""
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
        self._dispatch(host, f"capability {capability}.{command} for {device.label}", device.id,
                       "command", device=device.id, capability=capability, component=component,
                       command=command, args=named)
        if wait:
            self.settle()

    def set_hub_ip(self, ip: str) -> None:
        """The hub's LAN address changes (a new DHCP lease): each driver's environment_info follows, and
        its lan_info_changed_handler runs."""
        self.net.set_hub_ip(ip)
        for driver in list(self.drivers.values()):
            if isinstance(driver, WorkerHandle):
                self._dispatch(driver, "environment update", None, "environment", environment=self.net.environment)
        self.settle()

    def discover(self, driver: str) -> None:
        self._dispatch(self._driver(driver), "discovery", None, "discovery")
        self.settle()

    def record_event(self, driver: str, device_id: str, component: str, capability: str, attribute: str,
                     value: Any, unit: Any, state_change: bool) -> None:
        device = self.devices.get(device_id)
        record = Event(self.clock.now(), driver, device_id, device.label if device else device_id,
                       component, capability, attribute, value, unit, state_change)
        self.events.append(record)
        if self.on_event is not None:
            self.on_event(record)
        if self.events.dropped == 1:
            self.log("warn", driver, f"the hub keeps its last {self.events.maxlen:,} events: older ones are let "
                                     "go from hub.events() and `print: events`")

    # -- timers and time ------------------------------------------------------

    def start_timer(self, driver: str, timer_id: int, seconds: float, repeating: bool, name: str | None) -> None:
        if not valid_seconds(seconds):  # the driver API refuses these; a timer never fires at NaN
            self.log("error", driver, f"timer {name or timer_id}: ignored, its delay {seconds!r} is not a time")
            return
        self.timers.start(driver, timer_id, self.clock.now() + seconds, seconds if repeating else None, name)

    def advance(self, seconds: float) -> None:
        """Moves hub time forward, firing due timers in order (real time: waits)."""
        if not valid_seconds(seconds):
            raise HubError(f"advance takes a finite number of seconds >= 0, got {seconds!r}")
        self.settle()
        end = self.clock.now() + seconds
        stopping = self._stopping
        while (timer := self.timers.pop_due(end)) is not None:
            self.clock.wait_until(timer.due, stopping, self._poll_workers)
            self.check_stop()
            self._fire(timer)
            self.settle()
        self.clock.wait_until(end, stopping, self._poll_workers)
        self.check_stop()
        self._maybe_flush()

    def _fire(self, timer: Any) -> None:
        driver = self.drivers.get(timer.driver)
        if isinstance(driver, WorkerHandle):
            what = f"timer {timer.name}" if timer.name else f"timer {timer.id}"
            self._dispatch(driver, what, None, "timer", id=timer.id)

    # -- the three kinds of stop ----------------------------------------------

    def crash_driver(self, name: str) -> None:
        """Driver crash: unsaved changes die with the Lua state; the hub restarts
        a packaged driver from its saved data and sends `init` to its devices."""
        driver = self.drivers.pop(name, None)
        if isinstance(driver, WorkerHandle):
            driver.kill()
        self.timers.forget(name)
        self.lan.forget(name)
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
            if isinstance(driver, WorkerHandle):
                done = driver.call(self._message("stop", what="driver_lifecycle shutdown"))
                for what, outcome in done.reports if done.outcome.ok else [(done.what, done.outcome)]:
                    self._report(driver.name, what, outcome)
            else:
                driver.datastore.force_save()
        self._drop_drivers()

    def _drop_drivers(self) -> None:
        """Every driver is gone (stopped or killed): its timers and its sockets on the LAN with it."""
        for name in self.drivers:
            self.lan.forget(name)
        self.drivers.clear()
        self.timers.forget()

    def shutdown(self) -> None:
        """Graceful stop: nothing is lost. (A second call does nothing.)"""
        if self.store.closed:
            return
        self.settle()
        self._stop_drivers()
        self.store.close()

    def lose_power(self) -> None:
        """Power cut: only what was flushed to disk survives."""
        for driver in self.drivers.values():
            if isinstance(driver, WorkerHandle):
                driver.kill()
        self._drop_drivers()
        if not self.store.closed:
            self.store.lose_power()

    def restart(self, kind: str) -> None:
        """Stops the hub (or its drivers) in one of the three ways and starts again from what survived."""
        if kind not in STOP_KINDS:
            raise HubError(f"unknown kind of restart {kind!r}; choose one of {', '.join(STOP_KINDS)}")
        self.settle()
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
        self.devices.load(self.store)
        self._last_flush = self.clock.now()
        for package in self.packages.values():
            self._start(package)
        self.settle()

    # -- standalone scripts (`hubrt lua`) -------------------------------------

    def start_driver(self, name: str, src_dir: Path | None = None) -> DriverRuntime:
        """Starts (or restarts) a bare driver runtime (no package) in this process, from its saved
        snapshot (the datastore's own tests use it)."""
        driver = DriverRuntime(
            name, self.store, engine=self.engine, strict=self.strict, max_memory=self.max_memory,
            src_dir=src_dir, print_line=self.print_line, warn=lambda text: self.log("warn", name, text),
            log=lambda level, text: self.log(level, name, text),
        )
        self.drivers[name] = driver
        return driver

    def run_script(self, path: Path, name: str | None = None) -> None:
        """Runs a standalone Lua file as a one-driver hub, in a worker process.

        A normal end is a graceful stop of that driver (its datastore is saved);
        an uncaught error is a driver crash (unsaved changes are lost) and raises
        a LuaFailure, as does a worker that dies or is stopped (SIGTERM, Ctrl-C).
        """
        name = name or path.stem
        options = DriverOptions(self.engine, self.strict, self.max_memory, handler_timeout=0)
        worker = ProcessWorker(name, None, options, self._serve, self._stopping)
        self.drivers[name] = worker
        try:
            outcome = worker.call(self._message("script", what=str(path), path=str(path.resolve()))).outcome
        finally:
            worker.kill()
            self.drivers.pop(name, None)
        if outcome.kind == "store":
            raise StoreError(outcome.message)
        if not outcome.ok:
            raise LuaFailure(outcome.kind, outcome.message, outcome.traceback)
