"""The pytest plugin, tested with pytest's own pytester: collection, reports, isolation, xdist."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import SWITCH_PROFILE, make_driver

pytest_plugins = ["pytester"]

DRIVER = """
local Driver = require "st.driver"
local capabilities = require "st.capabilities"
Driver("t", {capability_handlers = {switch = {
  on = function(driver, device)
    driver.datastore.count = (driver.datastore.count or 0) + 1
    device:emit_event(capabilities.switch.switch.on())
  end,
  off = function(driver, device)
    error("off is broken")
  end,
}}}):run()
"""

TESTS = """
local test = require "hubrt.test"
local hub = test.hub

test("passes", function()
  local s = hub.add_device{profile = "switch", label = "S"}
  hub.command(s, "switch", "on")
  test.equal(hub.datastore().count, 1)
end)

test("fails", function()
  test.equal({a = 1, b = {2, 3}}, {a = 1, b = {2, 4}})
end)

test("errors", function()
  local t = nil
  return t.field
end)

test.skip("skipped", function() end, "not today")

test("handler errors can be fatal", function()
  local s = hub.add_device{profile = "switch", label = "S"}
  hub.command(s, "switch", "off") -- logged, not fatal
  test.assert_log("error", "off is broken")
  hub.fatal_errors(true)
  test.expect_error("off is broken", function() hub.command(s, "switch", "off") end)
end)
"""

ISOLATION = """
local test = require "hubrt.test"
local hub = test.hub
for i = 1, 2 do
  test("writer " .. i, function()
    local s = hub.add_device{profile = "switch", label = "S"}
    test.equal(hub.datastore().count, nil, "each test starts with an empty store")
    hub.command(s, "switch", "on")
    hub.restart("graceful")
    test.equal(hub.datastore().count, 1)
  end)
end
"""


@pytest.fixture
def package(pytester):
    root = pytester.path / "drv"
    (root / "profiles").mkdir(parents=True)
    (root / "src" / "test").mkdir(parents=True)
    (root / "config.yml").write_text("name: t\npackageKey: t\n")
    (root / "profiles" / "switch.yml").write_text(textwrap.dedent(SWITCH_PROFILE))
    (root / "src" / "init.lua").write_text(DRIVER)
    (root / "src" / "test" / "test_basic.lua").write_text(TESTS)
    (root / "src" / "test" / "test_isolation.lua").write_text(ISOLATION)
    return root


def test_outcomes_and_failure_report(pytester, package):
    result = pytester.runpytest("drv", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=4, failed=2, skipped=1)
    out = result.stdout.str()
    assert "Lua test 'fails' (luajit) failed at drv/src/test/test_basic.lua:12" in out
    assert "b[2]: expected 4, got 3" in out
    assert "Lua test 'errors' (luajit) failed at drv/src/test/test_basic.lua:17" in out
    assert "attempt to index" in out and "stack traceback" in out
    assert "not today" in out
    assert "hubrt/testing.py" not in out and "lupa" not in out, "no Python internals in Lua failures"


def test_node_ids_and_k_selection(pytester, package):
    result = pytester.runpytest("drv", "--collect-only", "-q")
    out = result.stdout.str()
    assert "drv/src/test/test_basic.lua::passes" in out and "drv/src/test/test_isolation.lua::writer 2" in out
    result = pytester.runpytest("drv", "-k", "passes or writer")
    result.assert_outcomes(passed=3)


def test_both_engines_put_the_engine_in_the_id(pytester, package):
    result = pytester.runpytest("drv", "--lua", "both", "-k", "passes", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_basic.lua::passes?luajit? PASSED*", "*test_basic.lua::passes?5.3? PASSED*"])


def test_isolation_between_tests_writing_the_same_key(pytester, package):
    result = pytester.runpytest("drv/src/test/test_isolation.lua")
    result.assert_outcomes(passed=2)


def test_parallel_run_with_xdist(pytester, package):
    result = pytester.runpytest("drv", "-n", "2", "-k", "not fails and not errors")
    result.assert_outcomes(passed=3, skipped=1)


def test_junit_xml(pytester, package):
    result = pytester.runpytest("drv", "--junitxml=out.xml", "-k", "passes or fails")
    result.assert_outcomes(passed=1, failed=1)
    xml = (pytester.path / "out.xml").read_text()
    assert 'name="passes"' in xml and "<failure" in xml


def test_syntax_error_in_a_test_file_is_a_collection_error(pytester, package):
    (package / "src" / "test" / "test_broken.lua").write_text("test(\n")
    result = pytester.runpytest("drv/src/test/test_broken.lua")
    assert result.ret != 0
    assert "test_broken.lua:2:" in result.stdout.str()


def test_two_tests_with_one_name_fail_collection_at_the_second(pytester, package):
    (package / "src" / "test" / "test_twice.lua").write_text(
        'local test = require "hubrt.test"\ntest("same", function() end)\n\ntest("same", function() end)\n')
    result = pytester.runpytest("drv/src/test/test_twice.lua")
    assert result.ret != 0
    result.stdout.fnmatch_lines(['*test_twice.lua:4: a second test named "same" (the first is at line 2)*'])


@pytest.mark.parametrize("name, shown", [('""', '""'), ('"a::b"', '"a::b"'), ('"two\\nlines"', '"two\\10lines"'),
                                         ('"caf\\233"', '"caf\ufffd"')])
def test_a_name_that_cannot_be_a_test_id_fails_collection_at_its_line(pytester, package, name, shown):
    (package / "src" / "test" / "test_named.lua").write_text(
        f'local test = require "hubrt.test"\ntest({name}, function() end)\n')
    result = pytester.runpytest("drv/src/test/test_named.lua")
    assert result.ret != 0
    result.stdout.fnmatch_lines([f"*test_named.lua:2: test name {shown}: a test needs a name of UTF-8 text on one "
                                 "line, without '::'"])


def test_file_level_state_does_not_leak_between_tests(pytester, package):
    (package / "src" / "test" / "test_leak.lua").write_text(textwrap.dedent("""
        local test = require "hubrt.test"
        local seen = {}
        for i = 1, 2 do
          test("t" .. i, function()
            test.equal(#seen, 0, "each test starts from the file's own top level")
            seen[#seen + 1] = i
            shared_global = (shared_global or 0) + 1
            test.equal(shared_global, 1)
          end)
        end
    """))
    result = pytester.runpytest("drv/src/test/test_leak.lua")
    result.assert_outcomes(passed=2)


MISUSE = """
local test = require "hubrt.test"
local hub = test.hub
test("missing argument", function() hub.command("lamp", nil, "on") end)
test("time backwards", function() hub.advance(-1) end)
test("bad pattern", function() test.expect_error("[", function() error("x") end) end)
test("cycles", function()
  local a, b = {}, {}
  a.self, b.self = a, b
  test.equal(a, b)          -- equal, though both are cyclic
  b.extra = 1
  test.equal(a, b)
end)
test("runaway", function() while true do end end)
"""


def test_misuse_fails_at_the_test_line_with_a_plain_message(pytester, package):
    (package / "src" / "test" / "test_misuse.lua").write_text(MISUSE)
    result = pytester.runpytest("drv/src/test/test_misuse.lua", "--lua-test-timeout", "0.5", "--lua", "both")
    result.assert_outcomes(failed=10)
    result.stdout.fnmatch_lines([
        "*test_misuse.lua:4: hub.command: capability must be a string, got nil",
        "*test_misuse.lua:5: hub.advance: seconds must be a number >= 0 (time only moves forward), got -1",
        "*test_misuse.lua:6: test.expect_error: bad pattern \"[\": malformed pattern*",
        "*test_misuse.lua:12: not equal",
        "  .extra: missing (expected 1)",
        "*test_misuse.lua:14: test 'runaway' ran for more than 0.5 s and was stopped",
    ])
    out = result.stdout.str()
    assert "Traceback" not in out and "TestBridge" not in out
    # the message once, then the frames (not the message again at the head of the traceback)
    assert "capability must be a string, got nil\n\nstack traceback:" in out
    assert "got nil\n\ndrv/src/test/test_misuse.lua:4:" not in out


def test_a_long_advance_is_stopped_and_its_output_cut_short(pytester, package):
    (package / "src" / "init.lua").write_text(
        'local log = require "log"\n'
        'local driver = require("st.driver")("t", {})\n'
        'driver:call_on_schedule(1, function() log.info("tick") end)\n'
        "driver:run()\n")
    (package / "src" / "test" / "test_long.lua").write_text(
        'local test = require "hubrt.test"\ntest("forever", function()\n  test.hub.advance(1e12)\nend)\n')
    result = pytester.runpytest("drv/src/test/test_long.lua", "--lua-test-timeout", "0.5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_long.lua:3: test 'forever' ran for more than 0.5 s and was stopped",
                                 "*earlier lines of output not shown (the last 1000 follow)"])
    assert result.stdout.str().count("INFO  t  tick") == 1000


def test_a_runaway_top_level_is_stopped_at_the_test_time_limit(pytester, package):
    """A test file's top level, and the driver's main chunk its tests start, are stopped at their line
    (collection, and the test, used to wait for them forever)."""
    (package / "src" / "test" / "test_top.lua").write_text(
        'local test = require "hubrt.test"\nwhile true do end\ntest("t", function() end)\n')
    result = pytester.runpytest("drv/src/test/test_top.lua", "--lua-test-timeout", "0.5", "--lua", "both")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*test_top.lua:2: the top level of test_top.lua ran for more than 0.5 s and was "
                                 "stopped"])
    (package / "src" / "init.lua").write_text('local Driver = require "st.driver"\nwhile true do end\n')
    (package / "src" / "test" / "test_top.lua").write_text('local test = require "hubrt.test"\ntest("t", function() end)\n')
    result = pytester.runpytest("drv/src/test/test_top.lua", "--lua-handler-timeout", "0.3")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*src/init.lua:2: src/init.lua ran for more than 0.3 s and was stopped"])


def test_a_platform_integration_test_file_is_skipped_with_a_reason(pytester, package):
    (package / "src" / "test" / "test_platform.lua").write_text(
        'local test = require("integration_test")\ntest.register_coroutine_test("x", function() end)\n'
        "test.run_registered_tests()\n")
    result = pytester.runpytest("drv", "-rs", "-k", "passes or integration")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*test_platform.lua: written for the platform's integration_test library*"])


def test_hubrt_test_command_runs_the_same(pytester, package):
    result = pytester.run(sys.executable, "-m", "hubrt", "test", "drv", "-k", "passes or writer", "-p", "no:cacheprovider")
    assert result.ret == 0
    assert "3 passed" in result.stdout.str() and "warning" not in result.stdout.str()


def test_stores_left_by_a_killed_run_are_removed_by_the_next(pytester, package):
    from hubrt.testing import scratch_parent

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    orphan = Path(scratch_parent()) / f"hubrt-tests-{gone.pid}-x1"
    (orphan / "test-y" / "state").mkdir(parents=True)
    mine = Path(scratch_parent()) / f"hubrt-tests-{os.getpid()}-x2"  # a live process: kept
    mine.mkdir()
    try:
        result = pytester.run(sys.executable, "-m", "hubrt", "test", "drv", "-k", "passes", "-p", "no:cacheprovider")
        assert result.ret == 0
        assert not orphan.exists() and mine.exists()
    finally:
        shutil.rmtree(orphan, ignore_errors=True)
        mine.rmdir()


def test_line_coverage_report(pytester, package):
    result = pytester.runpytest("drv", "--lua-cov", "-k", "passes")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "Lua line coverage (driver files)" in out
    # init.lua: the body of the `off` handler (line 10) never ran in this selection
    line = next(l for l in out.splitlines() if l.startswith("drv/src/init.lua:"))
    assert line.endswith("missed: 10"), line
    result = pytester.runpytest("drv", "--lua-cov", "-n", "2", "-k", "passes or fatal")
    assert "missed" not in next(l for l in result.stdout.str().splitlines() if l.startswith("drv/src/init.lua:"))


def test_a_lua_tests_lua_states_are_freed_when_it_ends(tmp_path, monkeypatch):
    """Its two Lua states (and a restarted driver's) are in reference cycles only Python's cyclic
    collector frees; the runner collects them as the test ends, so a long suite's memory does not
    wait for a collection of the oldest generation."""
    import gc
    import weakref

    from hubrt.engine import LuaState
    from hubrt.testing import TestFile, TestOptions

    package = make_driver(tmp_path / "pkg", DRIVER, key="t", files={"src/test/test_states.lua": """
        local test = require "hubrt.test"
        test("restarts", function()
          test.hub.restart("driver_crash")
          test.hub.restart("graceful")
        end)
    """})
    made = []
    real_init = LuaState.__init__

    def counted(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(weakref.ref(self))

    monkeypatch.setattr(LuaState, "__init__", counted)
    test_file = TestFile(package / "src" / "test" / "test_states.lua")
    thresholds = gc.get_threshold()
    gc.collect()
    gc.disable()  # (nothing else collects meanwhile)
    try:
        test_file.run("restarts", TestOptions(out=lambda line: None))
        assert len(made) >= 4 and all(ref() is None for ref in made), [ref() for ref in made]
    finally:
        gc.enable()
    assert gc.get_threshold() == thresholds
