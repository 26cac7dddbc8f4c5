"""Shared fixtures: both Lua engines, and a one-driver hub that runs Lua snippets."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hubrt.engine import ENGINES, LuaFailure
from hubrt.hub import Hub

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=list(ENGINES))
def engine(request) -> str:
    return request.param


# Lua that copies a (datastore) value into plain tables, for reading it from Python.
PLAIN_LUA = """
local function plain(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = plain(x) end
  return out
end
local ds = require("datastore").init()
"""


class LuaHub:
    """A hub with one driver, `driver`, whose code is given as Lua snippets.

    Each `run` writes the snippet to `driver.lua` and runs it in the driver's
    current Lua state, the way `hubrt lua` runs a file. The stop methods are
    the three kinds of stop of spec/datastore.md section 4; after a stop the
    next `run` starts the hub (or driver) again from what survived.
    """

    def __init__(self, tmp_path: Path, engine: str, strict: bool = False) -> None:
        self.dir = tmp_path
        self.state_dir = tmp_path / "state"
        self.engine = engine
        self.strict = strict
        self.out: list[str] = []
        self.warnings: list[str] = []
        self.hub: Hub | None = None
        self.driver = None

    def _ensure(self):
        if self.hub is None:
            self.hub = Hub(self.state_dir, engine=self.engine, strict=self.strict,
                           print_line=self.out.append,
                           on_log=lambda record: self.warnings.append(record.text))
        if self.driver is None:
            self.driver = self.hub.start_driver("driver", src_dir=self.dir)
        return self.driver

    def run(self, code: str) -> tuple:
        driver = self._ensure()
        path = self.dir / "driver.lua"
        path.write_text(textwrap.dedent(code))
        return driver.run_file(path)

    def fails(self, code: str) -> str:
        """Runs code that must raise; returns the Lua error message."""
        with pytest.raises(LuaFailure) as info:
            self.run(code)
        return info.value.message

    @property
    def lua(self):
        return self._ensure().state

    def crash_driver(self) -> None:
        self._ensure()
        self.hub.crash_driver("driver")
        self.driver = None

    def restart(self) -> None:
        self._ensure()
        self.hub.shutdown()
        self.hub = self.driver = None

    def lose_power(self) -> None:
        self._ensure()
        self.hub.lose_power()
        self.hub = self.driver = None

    def close(self) -> None:
        if self.hub is not None:
            self.hub.shutdown()
            self.hub = self.driver = None


@pytest.fixture
def lua_hub(tmp_path, engine, monkeypatch):
    monkeypatch.chdir(tmp_path)  # error positions show paths relative to the working directory
    hub = LuaHub(tmp_path, engine)
    yield hub
    hub.close()


def hubrt(*args: str, cwd: Path = ROOT, check: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs the `hubrt` command line in a new process."""
    result = subprocess.run([sys.executable, "-m", "hubrt", *args], cwd=cwd, capture_output=True, text=True,
                            env={**(env or os.environ), "COLUMNS": "200"})
    if check and result.returncode != 0:
        raise AssertionError(f"hubrt {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


DIMMER = ROOT / "drivers" / "virtual-dimmer"
BRIDGE = ROOT / "drivers" / "lan-bridge"
THERMOSTAT = ROOT / "drivers" / "thermostat"

SWITCH_PROFILE = """
name: switch
components:
  - id: main
    capabilities:
      - id: switch
        version: 1
      - id: switchLevel
        version: 1
"""


def make_driver(root: Path, init_lua: str, *, key: str = "test-driver", profiles: dict | None = None,
                files: dict | None = None) -> Path:
    """Writes a driver package: config.yml, profiles/, src/init.lua (and any extra files)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yml").write_text(f"name: {key}\npackageKey: {key}\n")
    (root / "profiles").mkdir(exist_ok=True)
    for name, text in (profiles or {"switch": SWITCH_PROFILE}).items():
        (root / "profiles" / f"{name}.yml").write_text(textwrap.dedent(text))
    (root / "src").mkdir(exist_ok=True)
    (root / "src" / "init.lua").write_text(textwrap.dedent(init_lua))
    for rel, text in (files or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def new_hub(tmp_path, engine):
    """Makes hubs on tmp_path/state with a virtual clock, recording logs and events."""
    hubs = []

    def make(state_dir=None, **options):
        options.setdefault("engine", engine)
        options.setdefault("on_log", lambda record: None)
        hub = Hub(state_dir or tmp_path / "state", **options)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.shutdown()
