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
