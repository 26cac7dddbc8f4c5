"""The hub's persistent store: saved snapshots in memory, flushed to SQLite.

This mirrors what the real hub does. A driver's `save` hands its changed keys
to the hub's memory (`Store.save`); the hub writes them to disk later
(`Store.flush`: on an interval, on `commit`, on shutdown). A driver crash
loses nothing that was saved; a power cut loses what was not flushed. Each
flush is one SQLite transaction, so the file always holds one consistent
snapshot per driver.

Unlike the hub, a damaged store is never silently replaced: opening it fails
with a StoreError that names the file and the problem, and only an explicit
`start_empty=True` moves the damaged file aside and starts anew.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import os
import shutil
import sqlite3
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import orjson

from hubrt.wal import examine_wal

DB_NAME = "hub.db"
LOCK_NAME = "hub.lock"
APPLICATION_ID = 0x68756272  # "hubr"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datastore (
    driver TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    crc    INTEGER NOT NULL,  -- row_crc(driver, key, value): SQLite has no checksums of its own
    PRIMARY KEY (driver, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
    id     TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    crc    INTEGER NOT NULL,  -- row_crc(id, record)
    seq    INTEGER NOT NULL
);
"""

# a new store: its identity, its version and its tables
_NEW_STORE = f"PRAGMA application_id={APPLICATION_ID}; PRAGMA user_version={SCHEMA_VERSION}; {_SCHEMA}"

START_EMPTY_HINT = "run again with --start-empty to move it aside and start with an empty store"


def read_only_connection(path: Path) -> tuple[sqlite3.Connection, tempfile.TemporaryDirectory | None]:
    """A connection that reads the store at `path` and can write nothing. SQLite must create a -shm
    file to read a WAL store, which a read-only file system refuses: there it reads a copy, whose
    folder is returned too, to be cleaned up once the connection is closed."""
    copy = None
    if not os.access(path.parent, os.W_OK):
        copy = tempfile.TemporaryDirectory(prefix="hubrt-read-")
        for suffix in WAL_SUFFIXES[:2]:  # the database and its WAL (the -shm index is rebuilt)
            if Path(str(path) + suffix).exists():
                shutil.copyfile(str(path) + suffix, os.path.join(copy.name, DB_NAME + suffix))
        path = Path(copy.name) / DB_NAME
    try:  # as_uri escapes what a URI would read otherwise (a '?', '#' or '%' in a folder name)
        return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False), copy
    except sqlite3.Error:
        if copy is not None:
            copy.cleanup()
        raise


def row_crc(*parts: str) -> int:
    """The checksum kept beside each row, so that a flipped byte is found rather than loaded."""
    return zlib.crc32("\x00".join(parts).encode("utf-8", "surrogatepass"))


class StoreError(Exception):
    """The store cannot be used; the message says which file and why."""


class Store:
    """A hub state directory: one SQLite file holding every driver's datastore."""

    def __init__(self, state_dir: Path | str, *, start_empty: bool = False, durable: bool = True,
                 read_only: bool = False) -> None:
        """`durable=False` is for throw-away stores (Lua tests): no fsync, no lock, and the journal
        kept in memory instead of a WAL file. A power cut there is simulated in-process (what was not
        flushed is dropped), so the file never has to survive a real crash. `read_only` (store
        show, devices) takes no lock and writes nothing, so it also reads a store a running hub
        holds, or one on a read-only file system."""
        self.dir = Path(state_dir)
        self.path = self.dir / DB_NAME
        self._durable = durable
        self._read_only = read_only
        self._copy: tempfile.TemporaryDirectory | None = None
        self._pending: dict[str, dict[str, str | None]] = {}
        self.closed = False
        self.moved_aside: Path | None = None
        self._lock = None
        if durable and not read_only:
            self._lock = lock_state_dir(self.dir)
        elif not read_only:  # a throw-away store is its own test's: no other process can hold it
            _state_dir(self.dir)
        try:
            if start_empty:
                self.moved_aside = _move_aside(self.path)
            self._db = self._open()
        except BaseException:
            if self._lock is not None:
                self._lock.close()
            raise

    # -- opening -------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        existed = self.path.exists() and self.path.stat().st_size > 0
        template = None if existed or self._durable else _empty_store()
        if template is not None:  # a throw-away store (Lua tests) starts as a copy of an empty one
            self.path.write_bytes(template)
        # before SQLite replays the WAL (and, at close, folds it in and deletes it): once it has,
        # commits lost behind a damaged frame could no longer be told
        wal = examine_wal(self.path) if existed else None
        if wal is not None and wal.lost_commits:
            raise StoreError(self._damaged(wal.problem))
        try:
            if self._read_only:
                db, self._copy = read_only_connection(self.path)
            else:
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot open the store: {e}") from None
        try:
            if existed:
                self._check(db)
            if self._read_only:
                return db
            db.execute(f"PRAGMA journal_mode={'WAL' if self._durable else 'MEMORY'}")
            db.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'OFF'}")
            if existed:
                db.executescript(_SCHEMA)
            elif template is None:  # one transaction: a new store is written whole or not at all
                db.executescript(f"BEGIN; {_NEW_STORE} COMMIT;")
        except sqlite3.DatabaseError as e:
            db.close()
            raise StoreError(self._damaged(str(e))) from None
        except StoreError:
            db.close()
            raise
        return db

    def _check(self, db: sqlite3.Connection) -> None:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        if app_id != APPLICATION_ID:
            raise StoreError(self._damaged("it is an SQLite database, but not a hubrt store"))
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer hubrt (store version {version}, "
                             f"this hubrt reads up to {SCHEMA_VERSION}); upgrade hubrt to use it")
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise StoreError(self._damaged("the database is corrupt: " + "; ".join(problems[:3])))

    def _damaged(self, what: str) -> str:
        return f"{self.path}: the store is damaged ({what}). Nothing was changed; {START_EMPTY_HINT}."

    # -- the driver-facing side ------------------------------------------------

    def load(self, driver: str) -> dict[str, Any]:
        """The driver's saved snapshot (durable rows, overlaid with saves not yet flushed)."""
        values: dict[str, Any] = {}
        try:
            rows = self._db.execute("SELECT key, value, crc FROM datastore WHERE driver = ?", (driver,)).fetchall()
        except sqlite3.DatabaseError as e:
            raise StoreError(self._damaged(str(e))) from None
        for key, text, crc in rows:
            if row_crc(driver, key, text) != crc:
                raise StoreError(self._damaged(f"driver {driver!r}, key {key!r} fails its checksum"))
            values[key] = text
        for key, text in self._pending.get(driver, {}).items():
            if text is None:
                values.pop(key, None)
            else:
                values[key] = text
        docs = {}
        for key, text in values.items():
            try:
                docs[key] = orjson.loads(text)
            except orjson.JSONDecodeError as e:
                raise StoreError(self._damaged(f"driver {driver!r}, key {key!r} does not hold valid JSON: {e}")) \
                    from None
        return docs

    def save(self, driver: str, changes: dict[str, str | None]) -> None:
        """Takes a driver's changed keys into the hub's memory (JSON text, None = deleted)."""
        self._pending.setdefault(driver, {}).update(changes)

    def hand_over(self) -> None:
        """Saves reach this store at once (a driver's worker sends its saves; see worker.HubLink)."""

    def pending(self) -> bool:
        return bool(self._pending)

    def flush(self) -> None:
        """Writes every saved change to disk in one transaction; durable when it returns."""
        if not self._pending:
            return
        upserts = [(d, k, v, row_crc(d, k, v)) for d, ch in self._pending.items() for k, v in ch.items()
                   if v is not None]
        deletes = [(d, k) for d, ch in self._pending.items() for k, v in ch.items() if v is None]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO datastore (driver, key, value, crc) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (driver, key) DO UPDATE SET value = excluded.value, crc = excluded.crc", upserts)
                self._db.executemany("DELETE FROM datastore WHERE driver = ? AND key = ?", deletes)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back already (a full disk does)
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: could not write the store ({e}); the saved changes are kept "
                             "in memory and will be written at the next flush") from None
        self._pending.clear()

    # -- device records (hub data: written through at once) --------------------

    def put_device(self, device_id: str, record: dict) -> None:
        text = orjson.dumps(record).decode()
        try:  # one statement: atomic and durable on its own
            self._db.execute(
                "INSERT INTO devices (id, record, crc, seq) VALUES (?, ?, ?, "
                "(SELECT COALESCE(MAX(seq), 0) + 1 FROM devices)) "
                "ON CONFLICT (id) DO UPDATE SET record = excluded.record, crc = excluded.crc",
                (device_id, text, row_crc(device_id, text)))
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: could not write device {device_id}: {e}") from None

    def delete_device(self, device_id: str) -> None:
        try:
            self._db.execute("DELETE FROM devices WHERE id = ?", (device_id,))
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: could not delete device {device_id}: {e}") from None

    def devices(self) -> list[dict]:
        """Every device record, in the order the devices were added."""
        records = []
        try:
            rows = self._db.execute("SELECT id, record, crc FROM devices ORDER BY seq").fetchall()
        except sqlite3.DatabaseError as e:
            raise StoreError(self._damaged(str(e))) from None
        for device_id, text, crc in rows:
            if row_crc(device_id, text) != crc:
                raise StoreError(self._damaged(f"device {device_id!r} fails its checksum"))
            try:
                records.append(orjson.loads(text))
            except orjson.JSONDecodeError as e:
                raise StoreError(self._damaged(f"device {device_id!r} is not valid JSON: {e}")) from None
        return records

    def drivers(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT DISTINCT driver FROM datastore ORDER BY driver")]

    # -- stopping ----------------------------------------------------------

    def close(self) -> None:
        """Graceful stop: flush, then close."""
        try:
            self.flush()
        finally:
            self._release()

    def lose_power(self) -> None:
        """Power cut: what was not flushed is gone."""
        self._pending.clear()
        self._release()

    def _release(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.close()
        if self._copy is not None:
            self._copy.cleanup()
        self.closed = True


@functools.cache
def _empty_store() -> bytes | None:
    """The bytes of a new, empty store, made once per process (None where this Python cannot
    serialize a database, before 3.11)."""
    db = sqlite3.connect(":memory:")
    try:
        if not hasattr(db, "serialize"):
            return None
        db.executescript(_NEW_STORE)
        return db.serialize()
    finally:
        db.close()


def _state_dir(state_dir: Path) -> None:
    """Makes the state directory, or says why it cannot."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"{state_dir}: cannot use this state directory: {e.strerror}") from None


def lock_state_dir(state_dir: Path):
    """Holds the state directory for this process; a second hub is refused with the holder's pid."""
    _state_dir(state_dir)
    try:
        lock = open(state_dir / LOCK_NAME, "a+")
    except OSError as e:
        raise StoreError(f"{state_dir}: cannot use this state directory: {e.strerror}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise StoreError(f"{state_dir}: in use by another hubrt process (pid {holder}); "
                         "stop it or choose another --state directory") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


WAL_SUFFIXES = ("", "-wal", "-shm")  # the database file and the two files SQLite keeps beside it


def aside_name(path: Path) -> Path:
    """A name to keep a damaged store under, *.damaged-TIMESTAMP[-N], that no kept file has yet."""
    base = f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}"
    for n in itertools.count(1):
        target = path.with_name(base if n == 1 else f"{base}-{n}")
        if not any(Path(str(target) + suffix).exists() for suffix in WAL_SUFFIXES):
            return target
    raise AssertionError("unreachable")


def _move_aside(path: Path) -> Path | None:
    """Renames the database (and its WAL files) to a fresh *.damaged-TIMESTAMP; returns the new name."""
    if not path.exists():
        return None
    target = aside_name(path)
    for suffix in WAL_SUFFIXES:
        src = Path(str(path) + suffix)
        if src.exists():
            src.rename(Path(str(target) + suffix))
    return target
