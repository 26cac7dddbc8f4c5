"""Handler time limits under LuaJIT without a hook that runs all the time.

A count hook makes LuaJIT send every instruction through its hook dispatcher,
which cost a fifth of a capability command's time in Lua (bench/run.py). So a
LuaJIT state with a time limit installs no hook: its host code (sandbox.lua)
numbers each turn it starts and writes that number and the turn's limit into a
small record shared with this module; a thread of the process looks at every
record a few times per limit and, for a turn that has run past its limit on
its thread's CPU clock, installs the count hook from outside. `lua_sethook` is
made for that (LuaJIT's own interpreter calls it from its SIGINT handler, and
LuaJIT's hook is one for the whole state; a hook change also aborts a trace
being recorded, so the JIT compiler, on for hubrt's own modules, is no
obstacle: 300 runaways calling library code, each stopped, none crashed). The
hook then stops the handler at its line, as before, and takes itself off
again. Lupa lets go of the GIL while Lua runs, so this thread runs beside a
runaway loop.

Lua 5.3 keeps its hook (a hook there belongs to each coroutine, which nothing
outside the running one can find); so does a state with line coverage on.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
import weakref
from typing import Any

# How often the thread looks: a handler is stopped within its limit plus about twice this.
POLL = 0.02
_LUA_MASKCOUNT = 8
# Instructions after which the installed hook runs.
_HOOK_COUNT = 1000


class _Record(ctypes.Structure):
    """What the Lua side writes (through ffi, as an array of three doubles)."""

    _fields_ = [("serial", ctypes.c_double), ("limit", ctypes.c_double), ("overdue", ctypes.c_double)]


class Watch:
    """One Lua state's record, and what the thread needs to stop its handler."""

    def __init__(self, owner: Any, record: _Record, sethook: Any, state: int, hook: int, clock: int) -> None:
        # what holds the state open (not kept alive by the watch, which ends with it)
        self._owner = weakref.ref(owner, lambda _: _watches.discard(self))
        self.record = record
        self._sethook, self._state, self._hook, self._clock = sethook, state, hook, clock
        self._seen, self._since = -1.0, 0.0

    def look(self) -> None:
        record = self.record
        serial, limit = record.serial, record.limit
        if limit <= 0:
            self._seen = -1.0
            return
        try:
            now = time.clock_gettime(self._clock)
        except OSError:  # the thread that ran the state has ended
            self._seen = -1.0
            return
        if serial != self._seen:
            self._seen, self._since = serial, now
        elif now - self._since > limit:  # (again at each look, until the hook has stopped it)
            owner = self._owner()  # held while the state is hooked: it cannot close meanwhile
            if owner is not None:
                record.overdue = serial
                self._sethook(self._state, self._hook, _LUA_MASKCOUNT, _HOOK_COUNT)


_watches: set[Watch] = set()  # (changed by Lua states' threads, read by the watchdog's: the GIL keeps each step whole)
_wake = threading.Event()  # set when a watch is added
_thread: threading.Thread | None = None
_lib: Any = None
_hook: int | None = None  # the address of LuaJIT's C function that calls a Lua hook


def _loop() -> None:
    while True:
        if not _watches:
            _wake.wait()
            _wake.clear()
            continue
        for watch in tuple(_watches):
            watch.look()
        time.sleep(POLL)


def _forget_after_fork() -> None:
    """A forked process has none of its parent's threads, and watches its own states."""
    global _thread, _wake
    _thread, _wake = None, threading.Event()
    _watches.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _sethook() -> Any:
    """lua_sethook and lua_gethook of lupa's LuaJIT, or None where they cannot be reached."""
    global _lib
    if _lib is None:
        try:
            import lupa.luajit21

            lib = ctypes.CDLL(lupa.luajit21.__file__)
            lib.lua_sethook.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
            lib.lua_gethook.argtypes = [ctypes.c_void_p]
            lib.lua_gethook.restype = ctypes.c_void_p
            _lib = lib
        except (OSError, AttributeError, ImportError):
            _lib = False
    return _lib or None


def watch(owner: Any, helpers: Any) -> bool:
    """Watches the turns of `owner`'s LuaJIT state (`helpers`: its sandbox's) for as long as
    `owner` lives (it holds the state: the watch ends before the state can close); False if
    this process cannot (the state then keeps its hook)."""
    global _thread, _hook
    lib = _sethook()
    if lib is None or _hook == 0:  # (0: this LuaJIT did not show the C function its hooks run through)
        return False
    record = _Record()
    # (the state keeps the record: it is written for as long as the state runs, whatever ends first)
    anchor = helpers.watch_turns(ctypes.addressof(record), record, _hook is None)
    state = int(anchor.split(b"0x")[1], 16)
    if _hook is None:  # the hook is set, for the address of its C function (the same in every state)
        try:
            _hook = lib.lua_gethook(state) or 0
        finally:
            helpers.watch_ready(bool(_hook))  # and taken off again (the state unwatched without one)
        if not _hook:
            return False
    entry = Watch(owner, record, lib.lua_sethook, state, _hook, time.pthread_getcpuclockid(threading.get_ident()))
    _watches.add(entry)
    _wake.set()
    if _thread is None:
        _thread = threading.Thread(target=_loop, name="hubrt-watchdog", daemon=True)
        _thread.start()
    return True
