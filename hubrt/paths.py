"""Where the Lua modules that hubrt ships live: next to the package in a wheel,
at the top of the source tree in a checkout (and an editable install)."""

import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
LUA_DIR = _HERE / "lua" if (_HERE / "lua").is_dir() else _HERE.parent / "lua"


def settled(mtime_ns: int) -> bool:
    """Whether a time stamp is old enough for a later change to move it: file system time stamps
    are coarser than the time between two writes, so a listing or a reading cached against a stamp
    of the last second could miss a change made in the same tick."""
    return time.time_ns() - mtime_ns > 1_000_000_000
