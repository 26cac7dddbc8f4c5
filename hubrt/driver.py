"""One driver on the hub: its own sandboxed Lua state, its datastore and its `host` bridge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hubrt.bridge import DriverBridge
from hubrt.datastore import Datastore
from hubrt.engine import DEFAULT_ENGINE, DEFAULT_MAX_MEMORY, LuaState
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
        if hub.coverage is not None:
            hub.coverage.track(self.state)

    def _outcome(self, result: Any) -> Outcome:
        if not isinstance(result, tuple):
            result = (result,)
        if result[0] is True:
            return Outcome("ok", values=result[1:])
        _, kind, message, traceback = result
        text = lambda b: b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b or "")  # noqa: E731
        return Outcome(text(kind), text(message), self.state.driver_frames(text(traceback)))

    def start(self) -> Outcome:
        """Runs src/init.lua until driver:run() hands control to the hub."""
        path = self.package.src / "init.lua"
        chunk, err = self.state.compile_file(path)
        if chunk is None:
            return Outcome("syntax", err)
        result = self.state.helpers.start_main(chunk)
        if result == b"running":
            self.running = True
            return Outcome("ok")
        outcome = self._outcome(result)
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
        result = self.state.helpers.resume_main()
        return Outcome("ok") if result == b"running" else self._outcome(result)

    def call(self, timeout: float, name: str, method: str, *args: Any) -> Outcome:
        """Calls a dispatch method of the driver object under a deadline."""
        fn = self.lua_driver[method.encode()]
        try:
            result = self.state.helpers.dispatch(timeout, name.encode(), fn, self.lua_driver, *args)
        except self.state.lupa.LuaMemoryError:
            result = (False, b"memory", b"not enough memory: the driver's Lua state reached its memory cap", b"")
        outcome = self._outcome(result)
        if outcome.kind == "memory":
            self.state.helpers.collect_garbage()
        return outcome
