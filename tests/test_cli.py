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
