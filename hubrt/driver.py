"""One driver: its own sandboxed Lua state, its datastore and its `host` bridge.

A `DriverHost` is what runs inside a driver's worker (worker.py): it never
sees the Hub object, only a `HubLink` that turns what driver code asks of the
hub (events, logs, timers, saves) into messages. `DriverRuntime` is the bare
form used by `hubrt lua` and the datastore tests: a Lua state and a datastore
on a Store in the same process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hubrt.bridge import Bridge, DriverBridge
from hubrt.capabilities import Catalogue
from hubrt.datastore import Datastore
from hubrt.engine import DEFAULT_ENGINE, DEFAULT_MAX_MEMORY, OUT_OF_MEMORY, LuaFailure, LuaState
from hubrt.package import DriverPackage


@dataclass
class Outcome:
    """How a call into driver code ended."""

    # "ok", "error", "timeout", "memory", "exit", "syntax", "died" (the worker process),
    # "store" (the driver's saved data could not be loaded: the hub's problem, not the driver's)
    kind: str
    message: str = ""
    traceback: str = ""
    values: tuple = ()

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def crashed(self) -> bool:
        """Errors that end the driver's life (the hub restarts it); the rest are logged."""
        return self.kind in ("exit", "syntax", "died")

    def as_message(self) -> dict:
        return {"kind": self.kind, "message": self.message, "traceback": self.traceback}


OK = Outcome("ok")  # (shared: nothing changes an outcome once made)


@dataclass
class DriverOptions:
    """How the hub runs its drivers (the same for every driver of one hub)."""

    engine: str = DEFAULT_ENGINE
    strict: bool = False
    max_memory: int | None = DEFAULT_MAX_MEMORY
    handler_timeout: float = 2.0
    network: str = "simulated"  # or "real": sockets of the worker's own (hubrt/net/real.py)
    watched: bool = False  # handler time limits kept by the watchdog thread (a worker process's long-lived state)


class DriverRuntime:
    """A Lua state plus its datastore, loaded from the store's saved snapshot."""

    def __init__(
        self,
        name: str,
        store: Any,
        *,
        engine: str = DEFAULT_ENGINE,
        strict: bool = False,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        src_dir: Path | None = None,
        print_line: Callable[[str], None] = print,
        warn: Callable[[str], None] = print,
        interruptible: bool = False,
        watched: bool = False,
        log: Callable[[str, str], None] | None = None,
    ) -> None:
        """`store` is a Store, or anything with its load/save/flush (a worker's link to the hub).
        With `log(level, text)`, hubrt's modules (log, st.json, st.capabilities...) work too."""
        self.name = name
        self.reports: list[tuple[str, Outcome]] = []  # events and tasks that failed, not yet told
        self.state = LuaState(engine, max_memory=max_memory, driver_src=src_dir, print_line=print_line,
                              interruptible=interruptible, watched=watched)
        if log is not None:
            self.state.helpers.set_runtime_api(Bridge(self.state, Catalogue.standard(), log).api())
        self.datastore = Datastore(self.state, store, name, strict=strict, warn=warn)

    def run_file(self, path: Path) -> tuple:
        return self.state.run_file(path)

    def task_failed(self, what: str, kind: str, message: str, traceback: str) -> None:
        self.reports.append((what, Outcome(kind, message, traceback)))

    def take_reports(self) -> list[list]:
        """The failures of events and tasks since the last call, as a reply carries them."""
        taken = [[what, outcome.as_message()] for what, outcome in self.reports]
        self.reports.clear()
        return taken


class DriverHost(DriverRuntime):
    """A driver package as it runs in its worker: main chunk, dispatch of events."""

    def __init__(self, package: DriverPackage, link: Any, devices: dict[str, dict], options: DriverOptions,
                 coverage: Any = None) -> None:
        self.package = package
        self.options = options
        self.lua_driver: Any = None  # the object passed to driver:run()
        self.running = False
        super().__init__(
            package.package_key, link, engine=options.engine, strict=options.strict,
            max_memory=options.max_memory, src_dir=package.src,
            print_line=lambda line: link.log("info", line), warn=lambda text: link.log("warn", text),
            interruptible=options.handler_timeout > 0, watched=options.watched,
        )
        self.state.helpers.set_runtime_api(DriverBridge(self, link, devices).api())
        self.state.helpers.set_clock(link.epoch_seconds)
        if coverage is not None:
            coverage.track(self.state)

    def _protected(self, helper: Any, *args: Any) -> Outcome:
        try:
            return Outcome("ok", values=self.state.protected(helper, *args))
        except LuaFailure as e:
            return Outcome(e.kind, e.message, e.traceback)

    def _running(self, outcome: Outcome) -> bool:
        return outcome.ok and outcome.values == (self.state.helpers.RUNNING,)

    def start(self) -> Outcome:
        """Runs src/init.lua until driver:run() hands control to the hub."""
        path = self.package.src / "init.lua"
        chunk, err = self.state.compile_file(path)
        if chunk is None:
            return Outcome("syntax", err)
        outcome = self._protected(self.state.helpers.start_main, chunk, self.options.handler_timeout,
                                  b"src/init.lua")
        if self._running(outcome):
            self.running = True
            return self._protected(self.state.helpers.run_tasks, self.options.handler_timeout, b"src/init.lua")
        if outcome.ok:
            return Outcome("exit", f"{path.name} ended without calling driver:run()")
        if outcome.kind == "error":
            outcome.kind = "exit"  # an uncaught error at the top level is a driver crash
        return outcome

    def finish(self) -> Outcome:
        """Lets driver:run() return, so the rest of the main chunk runs (graceful stop)."""
        if not self.running:
            return Outcome("ok")
        self.running = False
        outcome = self._protected(self.state.helpers.resume_main, self.options.handler_timeout,
                                  b"src/init.lua after driver:run()")
        return Outcome("ok") if self._running(outcome) else outcome

    def call(self, name: str, method: str, *args: Any) -> Outcome:
        """Calls a dispatch method of the driver object under the handler time limit."""
        fn = self.lua_driver[method.encode()]
        return self._protected(self.state.helpers.dispatch, self.options.handler_timeout, name.encode(), fn,
                               self.lua_driver, *args)

    def call_all(self, calls: list[tuple[str, str, tuple]], done: Callable[[Outcome], None]) -> None:
        """Makes each (name, method, args) `call` in turn, in one call into Lua (what makes a
        worker's batch cheap); `done(outcome)` hears of each as it ends, in order."""
        state = self.state
        finished = 0

        def told(ok: Any, kind: Any = None, message: Any = None, traceback: Any = None) -> None:
            nonlocal finished
            finished += 1
            if ok is True:
                done(OK)
            else:
                failure = state.failure(kind, message, traceback)
                done(Outcome(failure.kind, failure.message, failure.traceback))

        flat: list[Any] = []
        for name, method, args in calls:
            flat += (name.encode(), method.encode(), len(args), *args)
        try:
            state.helpers.dispatch_all(self.options.handler_timeout, self.lua_driver, state.runtime.table_from(flat),
                                       told)
        except state.lupa.LuaMemoryError:  # outside any handler: that call fails, the next ones are made
            told(*OUT_OF_MEMORY)
            for name, method, args in calls[finished:]:
                done(self.call(name, method, *args))
