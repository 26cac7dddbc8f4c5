"""Where the Lua modules that hubrt ships live: next to the package in a wheel,
at the top of the source tree in a checkout (and an editable install)."""

from pathlib import Path

_HERE = Path(__file__).resolve().parent
LUA_DIR = _HERE / "lua" if (_HERE / "lua").is_dir() else _HERE.parent / "lua"
