"""The command line, run as a subprocess: the seed example, reloads in a new process, bad input."""

import json
import re
import sqlite3

import pytest

from conftest import ROOT, hubrt

SEED = ROOT / "drivers" / "examples" / "seed_datastore.lua"
ERROR_LINE = re.compile(
    r"^drivers/examples/seed_datastore\.lua:\d+: Data store keys and values must be JSON encodable: "
    r"function: (0x)?[0-9a-f]+ is of unsupported type function")


def test_seed_example_prints_what_its_comments_say(tmp_path, engine):
    result = hubrt("lua", str(SEED.relative_to(ROOT)), "--lua", engine, "--state", str(tmp_path), check=True)
    lines = result.stdout.splitlines()
    assert len(lines) == 5, lines
    assert ERROR_LINE.match(lines[0]) and "datastore.my_func" in lines[0]
    assert ERROR_LINE.match(lines[1]) and "datastore.nested_func.func" in lines[1]
    assert lines[2:] == ["true", "false", "true"]
    assert result.stderr == ""


def test_seed_example_result_is_on_disk(tmp_path, engine):
    hubrt("lua", str(SEED), "--lua", engine, "--state", str(tmp_path), check=True)
    db = sqlite3.connect(tmp_path / "hub.db")
    rows = db.execute("SELECT key, value FROM datastore WHERE driver = 'seed_datastore'").fetchall()
    db.close()
    # my_table was deleted before the last save; the failed writes never landed.
    assert [(k, json.loads(v)) for k, v in rows] == [("multi_nested_table", {"deeper": {"deepest": {}, "number": 1}})]


def test_nested_writes_persist_across_processes(tmp_path, engine):
    writer = tmp_path / "app.lua"
    writer.write_text("""
        local ds = require("datastore").init()
        if ds.runs == nil then
          ds.runs = 0
          ds.deep = {a = {b = {c = {}}}}
        end
        ds.runs = ds.runs + 1
        ds.deep.a.b.c[ds.runs] = "run " .. ds.runs
        print(ds.runs, #ds.deep.a.b.c == 0, ds.deep.a.b.c[1])
    """)
    for i in (1, 2, 3):
        result = hubrt("lua", str(writer), "--lua", engine, "--state", str(tmp_path / "s"), cwd=tmp_path,
                       check=True)
        assert result.stdout.split("\t")[0] == str(i)
    result = hubrt("store", "show", "app", "--state", str(tmp_path / "s"), check=True)
    assert '"c": [\n          "run 1",\n          "run 2",\n          "run 3"\n        ]' in result.stdout


def test_help_answers():
    result = hubrt("--help", check=True)
    assert "lua" in result.stdout and "store" in result.stdout
    result = hubrt("lua", "--help", check=True)
    for option in ("--lua", "--state", "--strict", "--max-memory", "--start-empty"):
        assert option in result.stdout


@pytest.mark.parametrize("args, expected", [
    (["lua", "missing.lua"], "does not exist"),
    (["lua", str(SEED), "--lua", "5.9"], "'5.9' is not one of"),
    (["lua", str(SEED), "--max-memory", "0"], "0 is not in the range"),
    (["frobnicate"], "No such command"),
])
def test_bad_arguments_get_a_clear_message(args, expected, tmp_path):
    result = hubrt(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_store_show_without_a_store(tmp_path):
    result = hubrt("store", "show", "--state", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "no hub store here" in result.stderr
    assert not (tmp_path / "nothing").exists(), "looking does not create a store"


def test_store_show_unknown_driver(tmp_path):
    hubrt("lua", str(SEED), "--state", str(tmp_path), check=True)
    result = hubrt("store", "show", "nobody", "--state", str(tmp_path))
    assert result.returncode == 2 and "seed_datastore" in result.stderr


def test_scripts_can_use_hubrts_modules(tmp_path, engine):
    script = tmp_path / "s.lua"
    script.write_text('local log = require "log"\nlog.info("hello")\n'
                      'print(require("st.json").encode({1, 2}))\n')
    result = hubrt("lua", str(script), "--lua", engine, "--state", str(tmp_path / "st"), check=True)
    assert result.stdout == "[1,2]\n" and "hello" in result.stderr, result


def test_ctrl_c_stops_a_runaway_script_and_keeps_what_it_saved(tmp_path, engine):
    import signal
    import subprocess
    import sys
    import time
    script = tmp_path / "spin.lua"
    script.write_text('local ds = require("datastore").init()\nds.before = 1\nds:save()\nds.unsaved = 2\n'
                      'print("spinning")\nwhile true do end\n')
    proc = subprocess.Popen([sys.executable, "-m", "hubrt", "lua", str(script), "--lua", engine,
                             "--state", str(tmp_path / "st")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "spinning\n"
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()  # a script that ignores Ctrl-C must not outlive the test
    assert time.monotonic() - start < 8 and proc.returncode == 130, err
    assert "was stopped" in err and "Traceback" not in err
    shown = json.loads(hubrt("store", "show", "spin", "--state", str(tmp_path / "st"), check=True).stdout)
    assert shown == {"before": 1}


def test_driver_text_cannot_drive_the_terminal(tmp_path):
    from conftest import DIMMER
    script = tmp_path / "s.yml"
    script.write_text('- add_device: {profile: dimmer, label: "L\\e]0;pwned\\aRED"}\n- print: devices\n')
    result = hubrt("run", str(DIMMER), "--script", str(script), "--state", str(tmp_path / "st"), check=True)
    for text in (result.stdout, result.stderr):
        assert "\x1b" not in text and "\x07" not in text
    assert "L\\x1b]0;pwned\\x07RED" in result.stdout and "L\\x1b]0;pwned\\x07RED" in result.stderr


def test_a_script_runs_its_cosock_tasks_in_cosock_run(tmp_path, engine):
    """In `hubrt lua`, cosock.run() runs the tasks until each has ended; a sleep (it needs the hub's
    timers) is an error at its line."""
    script = tmp_path / "tasks.lua"
    script.write_text("""local cosock = require "cosock"
local tx, rx = cosock.channel.new()
cosock.spawn(function() for i = 1, 3 do tx:send(i) end tx:close() end, "producer")
cosock.spawn(function()
  for n in function() return (rx:receive()) end do print("got " .. n) end
end, "consumer")
cosock.run()
print("all done")
""")
    result = hubrt("lua", str(script), "--lua", engine, "--state", str(tmp_path / "s"), check=True)
    assert result.stdout.splitlines()[:4] == ["got 1", "got 2", "got 3", "all done"], result.stdout
    sleeper = tmp_path / "sleeper.lua"
    sleeper.write_text('local cosock = require "cosock"\n'
                       'cosock.spawn(function() cosock.socket.sleep(1) end, "sleeper")\n'
                       'cosock.run()\n')
    result = hubrt("lua", str(sleeper), "--lua", engine, "--state", str(tmp_path / "s2"))
    assert result.returncode == 1 and "sleeper.lua:2: cosock: timeouts and sleeps need the hub's timers" in (
        result.stdout + result.stderr), result.stdout + result.stderr
