"""The simulated hub: owns the store on disk and the drivers running on it.

Data flows one way: CLI -> Hub -> DriverRuntime -> Datastore -> Store.
The three kinds of stop (spec/datastore.md section 4) are methods here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from hubrt.driver import DriverRuntime
from hubrt.engine import DEFAULT_ENGINE, DEFAULT_MAX_MEMORY, LuaFailure
from hubrt.store import Store


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


class Hub:
    def __init__(
        self,
        state_dir: Path | str,
        *,
        engine: str = DEFAULT_ENGINE,
        strict: bool = False,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        start_empty: bool = False,
        print_line: Callable[[str], None] = print,
        log: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.store = Store(state_dir, start_empty=start_empty)
        self.engine = engine
        self.strict = strict
        self.max_memory = max_memory
        self.print_line = print_line
        self.log = log or (lambda level, driver, text: _stderr(f"{level.upper():5} {driver}: {text}"))
        self.drivers: dict[str, DriverRuntime] = {}

    def start_driver(self, name: str, src_dir: Path | None = None) -> DriverRuntime:
        """Starts (or restarts) a driver from its saved snapshot."""
        driver = DriverRuntime(
            name, self.store, engine=self.engine, strict=self.strict, max_memory=self.max_memory,
            src_dir=src_dir, print_line=self.print_line,
            warn=lambda text: self.log("warn", name, text),
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

    # -- the three kinds of stop ------------------------------------------

    def crash_driver(self, name: str) -> None:
        """Driver crash: the driver's unsaved changes die with its Lua state."""
        self.drivers.pop(name, None)

    def shutdown(self) -> None:
        """Graceful stop: every driver saves, then the hub flushes to disk."""
        for driver in self.drivers.values():
            driver.datastore.save()
        self.drivers.clear()
        self.store.close()

    def lose_power(self) -> None:
        """Power cut: only what was flushed to disk survives."""
        self.drivers.clear()
        self.store.lose_power()
