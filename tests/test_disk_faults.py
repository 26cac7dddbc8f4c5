"""Disk faults: a full disk, a read-only file system, `hubrt store check` and `recover`.
Each gives a clear error and leaves what was already on disk undamaged."""

import contextlib
import json
import subprocess

import pytest

from conftest import DIMMER, hubrt
from hubrt.store import Store, StoreError


def fill(hub_run, n):
    for i in range(n):
        hub_run(f'require("datastore").init()["k{i}"] = string.rep("x", 2000)')


def test_disk_full_makes_commit_fail_cleanly_and_loses_nothing(lua_hub):
    lua_hub.run('local ds = require("datastore").init(); ds.before = "kept"; assert(ds:commit())')
    db = lua_hub.hub.store._db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
    fill(lua_hub.run, 20)
    (ok, reason) = lua_hub.run('return require("datastore").init():commit()')
    assert ok is None and b"full" in reason and b"kept in memory" in reason
    assert lua_hub.hub.store.pending(), "the saved changes wait in memory"
    db.execute("PRAGMA max_page_count = 1073741823")  # space again
    assert lua_hub.run('return require("datastore").init():commit()') == (True,)
    lua_hub.lose_power()
    lua_hub.run('local ds = require("datastore").init(); assert(ds.before == "kept" and #ds.k19 == 2000)')


@contextlib.contextmanager
def tmpfs(path, options):
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a size-limited file system here: {result.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_real_full_file_system(tmp_path):
    script = tmp_path / "fill.yml"
    script.write_text("- add_device: {profile: dimmer, label: Lamp}\n- flush\n"
                      + "- add_device: {profile: switch}\n" * 400)
    with tmpfs(tmp_path / "small", "size=160k") as small:
        result = hubrt("run", str(DIMMER), "--script", str(script), "--state", str(small / "state"))
        assert result.returncode == 2, result.stderr
        assert "full" in result.stderr and "Traceback" not in result.stderr
        store = Store(small / "state")  # what was on disk is still a sound store
        try:
            assert store.load("virtual-dimmer")
            assert any(d["label"] == "Lamp" for d in store.devices())
        finally:
            store.lose_power()


def test_read_only_file_system(tmp_path):
    with tmpfs(tmp_path / "ro", "size=4m") as fs:
        hubrt("run", str(DIMMER), "--script", str(DIMMER / "demo.yml"), "--state", str(fs / "state"), check=True)
        before = (fs / "state" / "hub.db").read_bytes()
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        result = hubrt("run", str(DIMMER), "--script", str(DIMMER / "demo.yml"), "--state", str(fs / "state"))
        assert result.returncode == 2 and "Read-only file system" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
        assert (fs / "state" / "hub.db").read_bytes() == before
        result = hubrt("run", str(DIMMER), "--script", str(DIMMER / "demo.yml"), "--state", str(fs / "new"))
        assert result.returncode == 2 and "cannot use this state directory" in result.stderr


def test_store_check_and_recover(tmp_path):
    hubrt("run", str(DIMMER), "--script", str(DIMMER / "demo.yml"), "--state", str(tmp_path), check=True)
    result = hubrt("store", "check", "--state", str(tmp_path), check=True)
    assert "ok; 2 datastore keys of 1 driver(s) and 1 device record(s)" in result.stdout
    import sqlite3
    db = sqlite3.connect(tmp_path / "hub.db")
    db.execute("UPDATE datastore SET value = '{broken' WHERE key = 'switched'")
    db.commit()
    db.close()
    damaged = (tmp_path / "hub.db").read_bytes()
    result = hubrt("store", "check", "--state", str(tmp_path))
    assert result.returncode == 1 and "'switched': fails its checksum" in result.stdout
    assert (tmp_path / "hub.db").read_bytes() == damaged, "check changes nothing"
    result = hubrt("store", "recover", "--state", str(tmp_path), check=True)
    assert "lost: driver 'virtual-dimmer', key 'switched'" in result.stdout
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("hub.db.damaged-") and p.suffix != "-wal"]
    assert any(p.read_bytes() == damaged for p in aside), "the damaged file is kept"
    assert hubrt("store", "check", "--state", str(tmp_path), check=True).returncode == 0
    shown = json.loads(hubrt("store", "show", "virtual-dimmer", "--state", str(tmp_path), check=True).stdout)
    assert "switched" not in shown and any(k.startswith("__") for k in shown)
    assert "'Lamp'" in hubrt("devices", "--state", str(tmp_path), check=True).stdout


def test_recover_from_garbage_saves_nothing_but_keeps_it(tmp_path):
    (tmp_path / "hub.db").write_bytes(b"garbage" * 500)
    result = hubrt("store", "check", "--state", str(tmp_path))
    assert result.returncode == 1 and "not readable as an SQLite database" in result.stdout
    result = hubrt("store", "recover", "--state", str(tmp_path), check=True)
    assert "recovered: 0 datastore keys" in result.stdout
    assert any(p.read_bytes() == b"garbage" * 500 for p in tmp_path.iterdir() if "damaged" in p.name)


def test_flush_error_message_names_the_file(tmp_path):
    store = Store(tmp_path)
    store._db.execute("PRAGMA max_page_count = 1")
    store.save("d", {"k": json.dumps("x" * 10000)})
    with pytest.raises(StoreError, match=str(tmp_path / "hub.db")):
        store.flush()
    store.lose_power()


def _damaged_store(state):
    """A store from the demo whose `switched` row fails its checksum (the rest is readable)."""
    import sqlite3
    hubrt("run", str(DIMMER), "--script", str(DIMMER / "demo.yml"), "--state", str(state), check=True)
    db = sqlite3.connect(state / "hub.db")
    db.execute("UPDATE datastore SET value = '{broken' WHERE key = 'switched'")
    db.commit()
    db.close()


def test_state_paths_with_uri_characters_are_plain_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "a?b#c%20d"
    hubrt("run", str(DIMMER), "--script", str(DIMMER / "demo.yml"), "--state", str(state), check=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = hubrt("store", "check", "--state", str(state), cwd=tmp_path)
    assert result.returncode == 0 and "ok;" in result.stdout, result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "no stray file"
    result = hubrt("store", "recover", "--state", str(state), cwd=tmp_path)
    assert result.returncode == 2 and "not damaged" in result.stderr, result.stderr


def test_recover_refuses_a_healthy_store_unless_forced(tmp_path):
    hubrt("run", str(DIMMER), "--script", str(DIMMER / "demo.yml"), "--state", str(tmp_path), check=True)
    before = (tmp_path / "hub.db").read_bytes()
    result = hubrt("store", "recover", "--state", str(tmp_path))
    assert result.returncode == 2 and "the store is not damaged; nothing was changed" in result.stderr
    assert (tmp_path / "hub.db").read_bytes() == before
    result = hubrt("store", "recover", "--force", "--state", str(tmp_path), check=True)
    assert "recovered: 2 datastore keys" in result.stdout


def test_two_stores_moved_aside_in_one_second_are_both_kept(tmp_path):
    from hubrt.store import aside_name
    path = tmp_path / "hub.db"
    first = aside_name(path)
    first.write_text("one")
    second = aside_name(path)
    assert second != first and not second.exists()


def test_recover_killed_at_any_point_loses_nothing(tmp_path):
    """The live store or the kept file holds every readable row, whenever recover is killed."""
    import random
    import shutil
    import signal
    import sys
    import time

    from hubrt.store_repair import examine
    template = tmp_path / "template"
    _damaged_store(template)
    expected = examine(template).rows
    import os
    rng = random.Random(5)
    for run in range(int(os.environ.get("HUBRT_RECOVER_KILLS", "12"))):  # a campaign: HUBRT_RECOVER_KILLS=100
        state = tmp_path / f"run{run}"
        shutil.copytree(template, state)
        proc = subprocess.Popen([sys.executable, "-m", "hubrt", "store", "recover", "--state", str(state)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        found = {}
        for db in [state / "hub.db", *state.glob("hub.db.damaged-*")]:
            if db.name.endswith(("-wal", "-shm")):
                continue
            probe = tmp_path / "probe"
            shutil.rmtree(probe, ignore_errors=True)
            probe.mkdir()
            for suffix in ("", "-wal"):
                if (db.parent / (db.name + suffix)).exists():
                    shutil.copyfile(db.parent / (db.name + suffix), probe / ("hub.db" + suffix))
            for driver, rows in examine(probe).rows.items():
                found.setdefault(driver, {}).update(rows)
        assert found == expected, f"run {run}: rows lost"
        assert (state / "hub.db").exists(), f"run {run}: no live store"


def test_check_on_a_read_only_file_system_reads_a_healthy_store_as_healthy(tmp_path):
    with tmpfs(tmp_path / "ro", "size=4m") as fs:
        import shutil
        import sqlite3
        hubrt("run", str(DIMMER), "--script", str(DIMMER / "demo.yml"), "--state", str(tmp_path / "s"), check=True)
        db = sqlite3.connect(tmp_path / "s" / "hub.db")  # a store as a killed hub leaves it: with a WAL
        db.execute("PRAGMA wal_autocheckpoint = 0")
        db.execute("UPDATE devices SET seq = seq + 1")
        db.commit()
        (fs / "state").mkdir()
        for name in ("hub.db", "hub.db-wal"):
            shutil.copyfile(tmp_path / "s" / name, fs / "state" / name)
        db.close()
        assert (fs / "state" / "hub.db-wal").stat().st_size > 0
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        result = hubrt("store", "check", "--state", str(fs / "state"))
        assert result.returncode == 0 and "ok;" in result.stdout, result.stdout + result.stderr
        result = hubrt("store", "show", "virtual-dimmer", "--state", str(fs / "state"))  # the other readers
        assert result.returncode == 0 and json.loads(result.stdout)["switched"] == 2, result.stderr
        result = hubrt("devices", "--state", str(fs / "state"))
        assert result.returncode == 0 and "'Lamp'" in result.stdout, result.stderr


def test_a_commit_on_a_full_disk_says_the_disk_is_full(tmp_path):
    script = tmp_path / "fill.lua"
    script.write_text('local ds = require("datastore").init()\n'
                      'for i = 1, 1000 do\n'
                      '  ds["k" .. i] = string.rep("x", 4000)\n'
                      '  local ok, err = ds:commit()\n'
                      '  if not ok then print(err) return end\n'
                      'end\n')
    with tmpfs(tmp_path / "small", "size=160k") as small:
        result = hubrt("lua", str(script), "--state", str(small / "state"))
        assert "full" in result.stdout and "cannot rollback" not in result.stdout, result.stdout + result.stderr


def test_recover_where_there_is_no_store_changes_nothing(tmp_path):
    result = hubrt("store", "recover", "--state", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "there is no store here" in result.stderr
    assert not (tmp_path / "nothing").exists()


def test_recover_on_a_full_disk_changes_nothing(tmp_path):
    import shutil
    _damaged_store(tmp_path / "damaged")
    with tmpfs(tmp_path / "small", "size=256k") as small:
        state = small / "state"
        shutil.copytree(tmp_path / "damaged", state)
        before = {p.name: p.read_bytes() for p in state.iterdir()}
        filler = small / "filler"
        with open(filler, "wb", buffering=0) as f:  # the rest of the disk
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        result = hubrt("store", "recover", "--state", str(state))
        assert result.returncode == 2 and "the damaged store is still in place" in result.stderr, result
        assert "Traceback" not in result.stderr
        after = {p.name: p.read_bytes() for p in state.iterdir()}
        # the data as it was: SQLite's read-only open may add an empty WAL and its -shm index (no data)
        assert after["hub.db"] == before["hub.db"] and after.get("hub.db-wal", b"") == before.get("hub.db-wal", b"")
        assert not [name for name in after if "damaged" in name or "recovering" in name], "nothing left behind"
