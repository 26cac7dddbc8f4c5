"""One driver on the hub: its own sandboxed Lua state, its datastore and its `host` bridge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hubrt.bridge import DriverBridge
from hubrt.datastore import Datastore
from hubrt.engine import DEFAULT_ENGINE, DEFAULT_MAX_MEMORY, LuaFailure, LuaState
from hubrt.package import DriverPackage
from hubrt.store import Store

if TYPE_CHECKING:
    from hubrt.hub import Hub


@dataclass
class Outcome:
    """How a call into driver code ended."""

    kind: str  # "ok", "error", "timeout", "memory", "exit", "syntax"
    message: str = ""
    traceback: str = ""
    values: tuple = ()

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def crashed(self) -> bool:
        """Errors that end the driver's life (the hub restarts it); the rest are logged."""
        return self.kind in ("exit", "syntax")


class DriverRuntime:
    """A Lua state plus its datastore, loaded from the hub's saved snapshot (used by `hubrt lua`)."""

    def __init__(
        self,
        name: str,
        store: Store,
        *,
        engine: str = DEFAULT_ENGINE,
        strict: bool = False,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        src_dir: Path | None = None,
        print_line: Callable[[str], None] = print,
        warn: Callable[[str], None] = print,
        interruptible: bool = False,
    ) -> None:
        self.name = name
        self.state = LuaState(engine, max_memory=max_memory, driver_src=src_dir, print_line=print_line,
                              interruptible=interruptible)
        self.datastore = Datastore(self.state, store, name, strict=strict, warn=warn)

    def run_file(self, path: Path) -> tuple:
        return self.state.run_file(path)


class DriverHost(DriverRuntime):
    """A driver package running on the hub: main chunk, dispatch of events, timers."""

    def __init__(self, hub: Hub, package: DriverPackage) -> None:
        self.package = package
        self.lua_driver: Any = None  # the object passed to driver:run()
        self.running = False
        super().__init__(
            package.package_key, hub.store, engine=hub.engine, strict=hub.strict, max_memory=hub.max_memory,
            src_dir=package.src, print_line=lambda line: hub.log("info", package.package_key, line),
            warn=lambda text: hub.log("warn", package.package_key, text),
            interruptible=hub.handler_timeout > 0,
        )
        self.state.helpers.set_runtime_api(DriverBridge(hub, self).api())
        self.state.helpers.set_clock(hub.clock.epoch_seconds)
        if hub.coverage is not None:
            hub.coverage.track(self.state)

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
        outcome = self._protected(self.state.helpers.start_main, chunk)
        if self._running(outcome):
            self.running = True
            return Outcome("ok")
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
        outcome = self._protected(self.state.helpers.resume_main)
        return Outcome("ok") if self._running(outcome) else outcome

    def call(self, timeout: float, name: str, method: str, *args: Any) -> Outcome:
        """Calls a dispatch method of the driver object under a deadline."""
        fn = self.lua_driver[method.encode()]
        return self._protected(self.state.helpers.dispatch, timeout, name.encode(), fn, self.lua_driver, *args)
