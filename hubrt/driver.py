"""One driver running on the hub: its own sandboxed Lua state and its datastore."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from hubrt.datastore import Datastore
from hubrt.engine import DEFAULT_ENGINE, DEFAULT_MAX_MEMORY, LuaState
from hubrt.store import Store


class DriverRuntime:
    """A driver's Lua state plus its datastore, loaded from the hub's saved snapshot."""

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
    ) -> None:
        self.name = name
        self.state = LuaState(engine, max_memory=max_memory, driver_src=src_dir, print_line=print_line)
        self.datastore = Datastore(self.state, store, name, strict=strict, warn=warn)

    def run_file(self, path: Path) -> tuple:
        return self.state.run_file(path)
