"""A damaged or busy store on disk: a clear message, the damaged file kept, never silently replaced."""

import sqlite3
import subprocess
import sys

import pytest

from conftest import ROOT, hubrt
from hubrt.store import Store, row_crc

SEED = str(ROOT / "drivers" / "examples" / "seed_datastore.lua")


def sql(db, statement: str) -> list:
    """Runs one statement on the database file, as another program would."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(statement).fetchall()
        conn.commit()
    finally:
        conn.close()
    return rows


def make_store(state):
    hubrt("lua", SEED, "--state", str(state), check=True)
    return state / "hub.db"


def assert_refused(state, db, original: bytes, expected: str):
    result = hubrt("lua", SEED, "--state", str(state))
    assert result.returncode == 2, result.stderr
    assert str(db) in result.stderr and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert db.read_bytes() == original, "the damaged file is left exactly as it was"


def test_garbage_file(tmp_path):
    db = tmp_path / "hub.db"
    db.write_bytes(b"this is not a database at all" * 100)
    assert_refused(tmp_path, db, db.read_bytes(), "--start-empty")


def test_truncated_file(tmp_path):
    db = make_store(tmp_path)
    with sqlite3.connect(db) as conn:  # enough rows to span several pages
        conn.executemany("INSERT INTO datastore VALUES ('filler', ?, ?, 0)",
                         [(f"k{i}", '"' + "x" * 200 + '"') for i in range(200)])
    conn.close()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    assert_refused(tmp_path, db, data[: len(data) // 2], "damaged")


def test_foreign_sqlite_file(tmp_path):
    db = tmp_path / "hub.db"
    sql(db, "CREATE TABLE photos (id INTEGER)")
    assert_refused(tmp_path, db, db.read_bytes(), "not a hubrt store")


def test_store_from_a_newer_hubrt(tmp_path):
    db = make_store(tmp_path)
    sql(db, "PRAGMA user_version = 99")
    assert_refused(tmp_path, db, db.read_bytes(), "newer hubrt")


@pytest.mark.parametrize("fix_checksum, expected", [
    (True, "does not hold valid JSON"),  # written by a buggy program that kept the checksum right
    (False, "fails its checksum"),       # edited by hand, or a flipped byte
])
def test_bad_row_names_driver_and_key(tmp_path, fix_checksum, expected):
    db = make_store(tmp_path)
    crc = row_crc("seed_datastore", "multi_nested_table", "{broken") if fix_checksum else 12345
    sql(db, f"UPDATE datastore SET value = '{{broken', crc = {crc} WHERE key = 'multi_nested_table'")
    result = hubrt("lua", SEED, "--state", str(tmp_path))
    assert result.returncode == 2
    assert "'seed_datastore'" in result.stderr and "'multi_nested_table'" in result.stderr
    assert expected in result.stderr
    assert sql(db, "SELECT value FROM datastore") == [("{broken",)], "nothing overwritten"


def test_a_flipped_byte_in_a_saved_value_is_found(tmp_path):
    db = make_store(tmp_path)
    data = bytearray(db.read_bytes())
    at = data.find(b'"deeper"')
    assert at > 0
    data[at + 2] ^= 0x01  # "deeper" -> "dfeper": still valid JSON, and wrong
    db.write_bytes(bytes(data))
    result = hubrt("store", "show", "--state", str(tmp_path))
    assert result.returncode == 2 and "fails its checksum" in result.stderr and "Traceback" not in result.stderr


def test_bit_flips_are_caught_or_harmless(tmp_path):
    db = make_store(tmp_path)
    good = hubrt("store", "show", "--state", str(tmp_path), check=True).stdout
    data = bytearray(db.read_bytes())
    for offset in range(100, len(data), max(1, len(data) // 40)):
        flipped = bytearray(data)
        flipped[offset] ^= 0x5A
        db.write_bytes(bytes(flipped))
        result = hubrt("store", "show", "--state", str(tmp_path))
        assert "Traceback" not in result.stderr
        assert (result.returncode == 0 and result.stdout == good) or \
               (result.returncode == 2 and "damaged" in result.stderr), (offset, result.stderr, result.stdout)
    db.write_bytes(bytes(data))


def test_start_empty_moves_the_damaged_store_aside(tmp_path):
    db = tmp_path / "hub.db"
    db.write_bytes(b"garbage" * 1000)
    result = hubrt("lua", SEED, "--state", str(tmp_path), "--start-empty", check=True)
    assert "moved the previous store aside" in result.stderr
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("hub.db.damaged-")]
    assert len(kept) == 1 and kept[0].read_bytes() == b"garbage" * 1000
    assert "multi_nested_table" in hubrt("store", "show", "--state", str(tmp_path), check=True).stdout


def test_second_hub_on_the_same_state_directory_is_refused(tmp_path):
    script = tmp_path / "hold.lua"
    script.write_text('print("ready")\nwhile true do end\n')
    proc = subprocess.Popen([sys.executable, "-m", "hubrt", "lua", str(script), "--state", str(tmp_path / "s")],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        result = hubrt("lua", SEED, "--state", str(tmp_path / "s"))
        assert result.returncode == 2
        assert f"pid {proc.pid}" in result.stderr and "another hubrt process" in result.stderr
    finally:
        proc.kill()
        proc.wait()


def test_state_directory_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = hubrt("lua", SEED, "--state", str(blocker / "state"))
    assert result.returncode == 2 and "cannot use this state directory" in result.stderr


COMMITS = """
local ds = require("datastore").init()
for i = 1, 1000000 do
  ds["k" .. (i % 20)] = i
  ds.n = i
  assert(ds:commit())
  if i == 200 then print("200 committed") end
end
"""


@pytest.fixture(scope="module")
def killed_store(tmp_path_factory):
    """A store as a SIGKILL leaves it: many acknowledged commits still in the WAL."""
    import signal
    import subprocess
    import sys
    folder = tmp_path_factory.mktemp("killed")
    (folder / "c.lua").write_text(COMMITS)
    proc = subprocess.Popen([sys.executable, "-m", "hubrt", "lua", str(folder / "c.lua"), "--state",
                             str(folder / "state")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "200 committed\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return folder / "state"


def _copy_with_flip(src, dst, offset):
    import shutil
    dst.mkdir()
    for name in ("hub.db", "hub.db-wal"):
        shutil.copyfile(src / name, dst / name)
    wal = bytearray((dst / "hub.db-wal").read_bytes())
    if offset is not None:
        wal[offset % len(wal)] ^= 0x10
    (dst / "hub.db-wal").write_bytes(wal)
    return dst


@pytest.mark.parametrize("offset, problem", [
    (None, None),
    (32 + 100 * (24 + 4096) + 24 + 777, "frame 101 of the WAL fails its checksum, so the"),
    (32 + 100 * (24 + 4096) + 9, "frame 101 of the WAL fails its checksum, so the"),  # a frame's salt
    (12, "the WAL header fails its checksum, so none of the"),
])
def test_a_damaged_wal_is_reported_not_silently_cut_short(killed_store, tmp_path, offset, problem):
    state = _copy_with_flip(killed_store, tmp_path / "state", offset)
    wal_before = (state / "hub.db-wal").read_bytes()
    result = hubrt("store", "check", "--state", str(state))
    if problem is None:
        assert result.returncode == 0, result.stdout
        return
    assert result.returncode == 1 and problem in result.stdout and "commit(s)" in result.stdout, result.stdout
    result = hubrt("lua", str(killed_store.parent / "c.lua"), "--state", str(state))
    assert result.returncode == 2 and "the store is damaged" in result.stderr and problem in result.stderr
    assert (state / "hub.db-wal").read_bytes() == wal_before, "nothing was changed"
    hubrt("store", "recover", "--state", str(state), check=True)
    kept = [p for p in state.iterdir() if p.name.startswith("hub.db.damaged-") and p.name.endswith("-wal")]
    assert kept and kept[0].read_bytes() == wal_before, "the damaged WAL is kept"


def test_the_store_can_be_shown_while_a_hub_runs(tmp_path):
    """Reading takes no lock: `store show` and `devices` work beside a running hub."""
    script = tmp_path / "s.yml"
    script.write_text("- add_device: {profile: dimmer, label: Lamp}\n- flush\n")
    from conftest import DIMMER
    hubrt("run", str(DIMMER), "--script", str(script), "--state", str(tmp_path / "st"), check=True)
    holder = Store(tmp_path / "st")  # a hub's hold on the state directory
    try:
        assert "'Lamp'" in hubrt("devices", "--state", str(tmp_path / "st"), check=True).stdout
        assert "__" in hubrt("store", "show", "--state", str(tmp_path / "st"), check=True).stdout
    finally:
        holder.lose_power()
