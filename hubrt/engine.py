"""Sandboxed Lua states, one per driver.

lupa's defaults hand Lua a `python` global and attribute access to every Python
object it sees. A driver is untrusted code, so every state made here is locked
down: strings cross as bytes (`encoding=None`; non-UTF-8 data stays data),
Python attributes are unreachable, and driver code runs in an environment
table built by `lua/host/sandbox.lua` that holds only safe library functions.

Compiling Lua source is the largest part of making a state (a test run makes
two per test), so every chunk compiled here -- hubrt's own modules and the
driver's files alike -- is compiled from source once per process and engine,
and loaded from the bytecode of that compilation afterwards. Only the host
loads bytecode, and only bytecode it made itself from text: driver code's own
`load` stays text-only, and `string.dump` is removed from its reach.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from hubrt import watchdog
from hubrt.paths import LUA_DIR, settled

ENGINES = {"luajit": "lupa.luajit21", "5.3": "lupa.lua53"}
DEFAULT_ENGINE = "luajit"
DEFAULT_MAX_MEMORY = 256 * 1024 * 1024


_LAZY_TABLE = b"""local fetch = ...
return setmetatable({}, {__index = function(t, name)
  local f = fetch(name)
  if f ~= nil then rawset(t, name, f) end
  return f
end})"""


class LuaFailure(Exception):
    """Driver code raised an error (or stopped) that nothing in Lua caught."""

    def __init__(self, kind: str, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.kind = kind  # "error", "exit", or "memory"
        self.message = message
        self.traceback = traceback


# What a protected call answers when the Lua state ran out of memory outside any Lua handler.
OUT_OF_MEMORY = (False, b"memory", b"not enough memory: the driver's Lua state reached its memory cap", b"")


def _deny_attributes(obj: Any, name: Any, is_setting: bool) -> Any:
    raise AttributeError("Python objects are not accessible from driver code")


def as_text(value: Any) -> str:
    """A string from Lua (bytes, as the states use encoding=None) as text; nil as ""."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def lua_functions(table: Any) -> SimpleNamespace:
    """The functions of a Lua table as Python attributes.

    lupa 2.8 returns a wrong value (a tuple holding the running coroutine)
    for attribute access, and for item access `t[k]`, on a Lua table made
    outside a coroutine when Python reads it while Lua runs inside one -- as
    driver code does in a cosock task (measured: the first `t[k]` of a
    callback is wrong, calls of Lua functions and `items()` are right). So
    every Lua table of host functions is read once, here, by iterating it, and
    Python code that may run inside a task reads tables with a `rawget` call.
    """
    return SimpleNamespace(**{k.decode(): v for k, v in table.items() if isinstance(k, bytes)})


def _lupa_module(engine: str):
    try:
        return importlib.import_module(ENGINES[engine])
    except KeyError:
        raise ValueError(f"unknown Lua engine {engine!r}; choose one of: {', '.join(ENGINES)}") from None


@functools.cache
def _host_source(name: str) -> bytes:
    return (LUA_DIR / "host" / name).read_bytes()


# (engine, chunk name, source) -> bytecode that the host compiled from that source
_BYTECODE: dict[tuple[str, bytes, bytes], bytes] = {}


def _candidates(root: str, parts: list[str]) -> list[tuple[str, str]]:
    """(file, path shown relative to root) for a module name under root, in search order."""
    rel = "/".join(parts)
    return [(os.path.join(root, shown), shown) for shown in (rel + ".lua", rel + "/init.lua")]


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


@functools.cache
def _runtime_module(name: str) -> tuple[bytes, str] | None:
    """(source, chunk name) of a module hubrt ships; read once, as they do not change under a run."""
    for path, shown in _candidates(str(LUA_DIR), name.split(".")):
        src = _read(path)
        if src is not None:
            return src, "@[hubrt]/" + shown
    return None


# The hub's libraries for its radios: a driver that needs one cannot run on hubrt yet.
_RADIO_LIBRARIES = {"st.zigbee": "Zigbee", "st.zwave": "Z-Wave", "st.matter": "Matter"}

_TOPS: dict[str, tuple[int, frozenset[str]]] = {}  # folder -> (its mtime, the names in it)


def _top_names(folder: str) -> frozenset[str]:
    """The names in a folder, listed again only when it changed (a Lua test makes two states per
    test, each with a finder for the same src/); a listing is kept once the folder's time stamp
    has `settled`."""
    mtime = os.stat(folder).st_mtime_ns
    known = _TOPS.get(folder)
    if known is not None and known[0] == mtime:
        return known[1]
    names = frozenset(os.listdir(folder))
    if settled(mtime):
        _TOPS[folder] = (mtime, names)
    return names


@dataclass
class ModuleFinder:
    """Resolves `require` names as the hub does: the driver's own files first (a driver may bundle
    its own copy of a library the hub ships), then the modules hubrt ships."""

    driver_src: Path | None = None
    _top: frozenset[str] | None = field(default=None, init=False, repr=False)  # src/'s top, read once

    def _in_src(self, first: str) -> bool:
        """Whether a module whose name starts with `first` can be in the driver's src/ at all (most
        `require`s name a module the hub ships: no file is opened for them there)."""
        if self._top is None:
            try:
                self._top = _top_names(str(self.driver_src))
            except OSError:  # (gone or unreadable: each lookup then says why)
                return True
        return first + ".lua" in self._top or first in self._top

    def find(self, name: str, runtime_only: bool = False) -> tuple[bytes | None, str, bool]:
        """(source, chunk name, is a runtime module) or (None, message, False). `runtime_only`: hubrt's
        own module even where the driver has one of that name (the hub's native libraries)."""
        parts = name.split(".")
        if not name or not name.isprintable() or any(p in ("", "..") or "/" in p or "\\" in p for p in parts):
            return None, f"module {name!r} not found: not a valid module name", False
        if parts[0] == "host":
            return None, f"module '{name}' not found: host modules are not available to drivers", False
        roots = [LUA_DIR]
        if self.driver_src is not None and not runtime_only:
            roots.insert(0, self.driver_src)
            for path, shown in _candidates(str(self.driver_src), parts) if self._in_src(parts[0]) else ():
                try:
                    src = _read(path)
                except OSError as e:
                    return None, f"module '{name}' cannot be read: {display_path(Path(path))}: {e.strerror}", False
                if src is not None:
                    if not _inside(path, self.driver_src):
                        return None, (f"module '{name}' not found: src/{shown} is a link to "
                                      f"{os.path.realpath(path)}, outside the driver's src/"), False
                    return src, "@" + display_path(Path(path)), False
        runtime = _runtime_module(name)
        if runtime is not None:
            return runtime[0], runtime[1], True
        tried = [path for root in roots for path, _ in _candidates(str(root), parts)]  # for the message only
        missing = f"module '{name}' not found"
        radio = _RADIO_LIBRARIES.get(".".join(parts[:2]))
        if radio:
            missing += (f" (the hub's {radio} library, which hubrt does not provide yet: it runs LAN and "
                        "virtual drivers)")
        return None, missing + ":\n\tno file " + "\n\tno file ".join(tried), False


def _inside(path: str, folder: Path) -> bool:
    """True when the file is really (links followed) inside the folder."""
    return os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep)


def display_path(path: Path) -> str:
    """The path as a driver author would type it: relative to the working directory when inside it."""
    return _display_path(str(path), os.getcwd())


@functools.lru_cache(maxsize=1024)
def _display_path(path: str, cwd: str) -> str:
    full, here = os.path.realpath(path), os.path.realpath(cwd)
    return os.path.relpath(full, here) if full.startswith(here + os.sep) else path


class LuaState:
    """One sandboxed Lua state; driver code sees only `self.env`."""

    def __init__(
        self,
        engine: str = DEFAULT_ENGINE,
        *,
        max_memory: int | None = DEFAULT_MAX_MEMORY,
        driver_src: Path | None = None,
        print_line: Callable[[str], None] = print,
        interruptible: bool = False,
        watched: bool = False,
    ) -> None:
        """`interruptible` turns LuaJIT's compiler off: compiled loops skip the
        instruction-count hook that stops a runaway handler (facts/lupa.md 8). `watched`
        (LuaJIT, a long-lived state: a driver's worker process) installs that hook only once a
        handler overruns (watchdog.py); setting it up costs ~80 us, more than a short-lived
        state (a Lua test's) saves. A watched state keeps the compiler for hubrt's own modules
        and turns it off for each chunk of driver code instead (see compile): most of a
        command's Lua is the driver library's, and the runaway loops to stop are the driver's."""
        self.engine = engine
        self.lupa = _lupa_module(engine)
        self.runtime = self.lupa.LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=_deny_attributes,
            max_memory=max_memory,
        )
        guarded_jit = interruptible and watched and engine == "luajit"
        if interruptible and engine == "luajit" and not watched:
            self.runtime.execute(b"jit.off()")
        self._load, self._dump = self.runtime.execute(b"return load, string.dump")
        self._interpret = None  # (set once the sandbox is made: see compile)
        self._finder = ModuleFinder(driver_src)
        host = self.table(
            print=lambda line: print_line(line.decode("utf-8", "replace")),
            find_module=self._find_module,
            compat53=self.host_chunk("compat53.lua") if engine == "luajit" else None,  # 5.3 has it all
            interpret_driver_code=guarded_jit,
        )
        self.env, helpers = self.host_chunk("sandbox.lua")(host)
        self.helpers = lua_functions(helpers)
        self._interpret = getattr(self.helpers, "interpret", None)
        if guarded_jit:
            watchdog.watch(self, self.helpers)  # else the count hook stays on

    # -- building blocks -------------------------------------------------

    def host_chunk(self, name: str):
        """Compiles a privileged chunk from lua/host/ (it runs with the real globals)."""
        chunk, err = self.compile(_host_source(name), b"@[hubrt]/host/" + name.encode(), privileged=True)
        if chunk is None:
            raise RuntimeError(err.decode("utf-8", "replace"))
        return chunk

    def compile(self, src: bytes, chunkname: bytes, *, privileged: bool = False,
                runtime: bool = False) -> tuple[Any, bytes | None]:
        """(function, None) or (None, the syntax error). Driver code gets the
        sandbox environment; a privileged chunk gets the real globals. hubrt's own
        modules (`runtime`) run in the sandbox too, but may be compiled by LuaJIT."""
        env = () if privileged else (self.env,)
        key = (self.engine, chunkname, src)
        bytecode = _BYTECODE.get(key)
        if bytecode is not None:
            result = self._load(bytecode, chunkname, b"b", *env)
        else:
            result = self._load(src, chunkname, b"t", *env)
            if isinstance(result, tuple):
                return None, result[1]
            _BYTECODE[key] = self._dump(result)
        if self._interpret is not None and not (privileged or runtime):
            self._interpret(result)
        return result, None

    def table(self, **fields: Any):
        return self.runtime.table_from({k.encode(): v for k, v in fields.items()})

    def lazy_table(self, functions: dict[str, Any]):
        """A Lua table of Python functions, each made callable from Lua only when Lua first uses it:
        a state is given dozens (the driver API's crossings) and most runs use a few."""
        chunk = self.compile(_LAZY_TABLE, b"=[hubrt]lazy", privileged=True)[0]
        return chunk({k.encode(): v for k, v in functions.items()}.get)

    def preload(self, name: str, loader: Any) -> None:
        """Makes `require(name)` return what `loader(name)` returns (called once)."""
        self.helpers.preload(name.encode(), loader)

    # -- running driver code ---------------------------------------------

    def compile_file(self, path: Path) -> tuple[Any, str]:
        """(chunk, "") or (None, the syntax error) for a Lua file of driver code."""
        src = path.read_bytes()
        chunk, err = self.compile(src, ("@" + display_path(path)).encode())
        if chunk is None:
            return None, self._explain_syntax_error(err, src).decode("utf-8", "replace")
        return chunk, ""

    def run_file(self, path: Path) -> tuple:
        """Runs a Lua file as driver code; raises LuaFailure for an uncaught error."""
        chunk, err = self.compile_file(path)
        if chunk is None:
            raise LuaFailure("syntax", err)
        return self.call(chunk)

    def call(self, fn: Any, *args: Any) -> tuple:
        """Calls a Lua function under the sandbox's error handling."""
        return self.protected(self.helpers.protected_call, fn, *args)

    def protected(self, helper: Any, *args: Any) -> tuple:
        """Calls a sandbox helper that answers like protected_call (true, results... or
        false, kind, message, traceback); returns the results or raises LuaFailure."""
        try:
            result = helper(*args)
        except self.lupa.LuaMemoryError:
            result = OUT_OF_MEMORY
        if not isinstance(result, tuple):
            result = (result,)
        if result[0] is True:
            return result[1:]
        raise self.failure(*result[1:])

    def failure(self, kind: bytes, message: bytes, traceback: bytes) -> LuaFailure:
        """What a protected call's `false, kind, message, traceback` means, for the driver's author."""
        kind, message, traceback = as_text(kind), as_text(message), as_text(traceback)
        if kind == "memory":  # the garbage stays until the next cycle
            self.helpers.collect_garbage()
        return LuaFailure(kind, message, self.driver_frames(traceback))

    @staticmethod
    def driver_frames(traceback: str) -> str:
        """The traceback without the runtime's own frames, which mean nothing to a driver author.
        The message above "stack traceback:" is kept whole."""
        message, marker, frames = traceback.partition("stack traceback:")
        kept = [line for line in frames.splitlines()
                if "[hubrt]/" not in line and line.strip() != "[C]: in function 'xpcall'"]
        return message + marker + "\n".join(kept)

    # -- callbacks from Lua ----------------------------------------------

    def _find_module(self, name: bytes, runtime_only: bool = False):
        """(compiled module, None, "runtime" or "driver") or (None, why not, "missing" or "syntax")."""
        src, where, is_runtime = self._finder.find(name.decode("utf-8", "replace"), bool(runtime_only))
        if src is None:
            return None, where.encode(), b"missing"
        chunk, err = self.compile(src, where.encode(), runtime=is_runtime)
        if chunk is None:
            return None, self._explain_syntax_error(err, src), b"syntax"
        return chunk, None, b"runtime" if is_runtime else b"driver"

    def _explain_syntax_error(self, err: bytes, src: bytes) -> bytes:
        """Under LuaJIT, says so when the failing code is valid Lua 5.3."""
        if self.engine != "luajit" or not _compiles_as_lua53(src):
            return err
        return err + b" (this is Lua 5.3 syntax, which LuaJIT does not support; run with --lua 5.3)"


_lua53_checker = None


def _compiles_as_lua53(src: bytes) -> bool:
    global _lua53_checker
    if _lua53_checker is None:
        from lupa import lua53

        _lua53_checker = lua53.LuaRuntime(encoding=None, register_eval=False, register_builtins=False).eval(
            b"function(s) return (load(s, '=check', 't', {})) ~= nil end"
        )
    return bool(_lua53_checker(src))
