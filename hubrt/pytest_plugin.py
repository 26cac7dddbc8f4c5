"""pytest plugin: every Lua test in a driver's src/test/test_*.lua is a pytest item.

Registered through the `pytest11` entry point, so `pytest drivers/` just works
once hubrt is installed. Node ids look like
`drivers/x/src/test/test_y.lua::name` (with `[luajit]`/`[5.3]` appended under
`--lua both`); a failure shows the Lua file and line, the message and the Lua
traceback rather than Python internals.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hubrt.coverage import LineCoverage
from hubrt.engine import ENGINES
from hubrt.inputs import InputError
from hubrt.testing import LuaTestFailure, TestFile, TestOptions, package_of

ENGINE_CHOICES = (*ENGINES, "both")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hubrt", "hubrt Lua driver tests")
    group.addoption("--lua", dest="hubrt_lua", choices=ENGINE_CHOICES, default="luajit",
                    help="Lua engine for Lua tests: luajit, 5.3 (the hub's), or both (each test twice).")
    group.addoption("--lua-strict", dest="hubrt_strict", action="store_true",
                    help="Datastore warnings (values that change across a restart) fail the test.")
    group.addoption("--lua-cov", dest="hubrt_cov", action="store_true",
                    help="Report line coverage of the drivers' own Lua files.")
    group.addoption("--lua-handler-timeout", dest="hubrt_timeout", type=float, default=2.0, metavar="S",
                    help="Seconds before a runaway driver handler is stopped (default 2; 0: never).")
    group.addoption("--lua-test-timeout", dest="hubrt_test_timeout", type=float, default=60.0, metavar="S",
                    help="CPU seconds before a runaway Lua test is stopped and fails (default 60; 0: never).")


_COVERAGE = pytest.StashKey[LineCoverage]()


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("hubrt_cov", False):
        config.stash[_COVERAGE] = LineCoverage()


def pytest_sessionfinish(session: pytest.Session) -> None:
    coverage = session.config.stash.get(_COVERAGE, None)
    workeroutput = getattr(session.config, "workeroutput", None)
    if coverage is not None and workeroutput is not None:  # an xdist worker: hand the data to the controller
        workeroutput["hubrt_coverage"] = coverage.as_data()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    coverage = node.config.stash.get(_COVERAGE, None)
    data = getattr(node, "workeroutput", {}).get("hubrt_coverage")
    if coverage is not None and data:
        coverage.merge(data)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    coverage = config.stash.get(_COVERAGE, None)
    if coverage is None or getattr(config, "workeroutput", None) is not None:
        return
    terminalreporter.section("Lua line coverage (driver files)")
    for row in coverage.report() or ["no driver code ran"]:
        terminalreporter.write_line(row)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    if (file_path.suffix == ".lua" and file_path.name.startswith("test_") and file_path.parent.name == "test"
            and package_of(file_path) is not None):
        return LuaTestFile.from_parent(parent, path=file_path)
    return None


def _engines(config: pytest.Config) -> tuple[str, ...]:
    choice = config.getoption("hubrt_lua")
    return tuple(ENGINES) if choice == "both" else (choice,)


# `require "integration_test"` (or require("integration_test"), ...): a test file written for the platform's
# own tooling, which hubrt does not provide. Such files are skipped with a word, not a collection error that
# would stop the whole run of a driver being brought over.
_PLATFORM_SUITE = re.compile(rb"""require\s*\(?\s*["']integration_test["'.]""")


class LuaTestFile(pytest.File):
    test_file: TestFile  # set by collect; its tests run through it

    def collect(self):
        source = self.path.read_bytes()
        if _PLATFORM_SUITE.search(source) and b"hubrt.test" not in source:
            yield LuaTestItem.from_parent(self, name="integration_test suite", test_name="", line=1, engine="",
                                          skip="written for the platform's integration_test library, which hubrt "
                                               "does not provide; tests for hubrt use require \"hubrt.test\"")
            return
        options = TestOptions(engine=_engines(self.config)[0], out=lambda line: None,
                              test_timeout=self.config.getoption("hubrt_test_timeout"))
        try:
            self.test_file = TestFile(self.path)
            declared = self.test_file.collect(options)
        except (LuaTestFailure, InputError) as e:
            raise self.CollectError(f"{e}") from None
        engines = _engines(self.config)
        for test in declared:
            for engine in engines:
                name = f"{test.name}[{engine}]" if len(engines) > 1 else test.name
                yield LuaTestItem.from_parent(self, name=name, test_name=test.name, line=test.line,
                                              engine=engine, skip=test.skip)


class LuaTestItem(pytest.Item):
    def __init__(self, *, test_name: str, line: int, engine: str, skip: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.test_name = test_name
        self.line = line
        self.engine = engine
        if skip:
            self.add_marker(pytest.mark.skip(reason=skip))

    def runtest(self) -> None:
        config = self.config
        options = TestOptions(engine=self.engine, strict=config.getoption("hubrt_strict"),
                              handler_timeout=config.getoption("hubrt_timeout"),
                              test_timeout=config.getoption("hubrt_test_timeout"), out=print,
                              coverage=config.stash.get(_COVERAGE, None))
        self.parent.test_file.run(self.test_name, options)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        error = excinfo.value
        if isinstance(error, LuaTestFailure):
            where = f"{error.location[0]}:{error.location[1]}" if error.location else str(self.path)
            frames = error.traceback.partition("stack traceback:")
            lines = [f"Lua test {self.test_name!r} ({self.engine}) failed at {where}", "", error.message]
            if frames[1]:
                lines += ["", frames[1] + frames[2]]
            return "\n".join(lines)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.line - 1, f"lua test {self.test_name} [{self.engine}]"
