"""`hubrt store check` and `hubrt store recover`: say what is wrong with a store, save what can be saved.

Checking opens the file read-only and changes nothing (on a read-only file
system, where SQLite cannot open a WAL store in place, it reads a copy).
Recovering reads every row that can still be read and decoded into a new store
built beside the old one, keeps the damaged file under a new name (it is never
deleted) and puts the new store in its place with one rename: killed at any
point, the data is in the live store or in the kept file. It refuses a store
that is not damaged unless forced.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from hubrt.store import (APPLICATION_ID, DB_NAME, SCHEMA_VERSION, WAL_SUFFIXES, Store, StoreError, aside_name,
                         lock_state_dir, read_only_connection, row_crc)
from hubrt.wal import examine_wal


@dataclass
class Salvage:
    """What could be read from a store file."""

    rows: dict[str, dict[str, str]] = field(default_factory=dict)  # driver -> key -> JSON text
    devices: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def keys(self) -> int:
        return sum(len(r) for r in self.rows.values())


def _read_rows(db: sqlite3.Connection, salvage: Salvage) -> None:
    """Every datastore row that can be read, stepping by primary key past what cannot."""
    try:
        rows = db.execute("SELECT driver, key, value, crc FROM datastore").fetchall()
    except sqlite3.DatabaseError as e:
        salvage.problems.append(f"the datastore table cannot be read in one go ({e}); reading row by row")
        rows, last = [], ("", "")
        while True:
            try:
                row = db.execute("SELECT driver, key, value, crc FROM datastore WHERE (driver, key) > (?, ?) "
                                 "ORDER BY driver, key LIMIT 1", last).fetchone()
            except sqlite3.DatabaseError as e2:
                salvage.problems.append(f"stopped reading after driver {last[0]!r}, key {last[1]!r}: {e2}")
                break
            if row is None:
                break
            rows.append(row)
            last = (row[0], row[1])
    for driver, key, text, crc in rows:
        if row_crc(driver, key, text) != crc:
            salvage.problems.append(f"driver {driver!r}, key {key!r}: fails its checksum; it cannot be saved")
            continue
        try:
            orjson.loads(text)
        except (orjson.JSONDecodeError, TypeError) as e:
            salvage.problems.append(f"driver {driver!r}, key {key!r}: not valid JSON ({e}); it cannot be saved")
            continue
        salvage.rows.setdefault(driver, {})[key] = text


def _read_devices(db: sqlite3.Connection, salvage: Salvage) -> None:
    try:
        rows = db.execute("SELECT id, record, crc FROM devices ORDER BY seq").fetchall()
    except sqlite3.DatabaseError as e:
        salvage.problems.append(f"the device records cannot be read ({e})")
        return
    for device_id, text, crc in rows:
        if row_crc(device_id, text) != crc:
            salvage.problems.append(f"device {device_id!r}: fails its checksum; it cannot be saved")
            continue
        try:
            salvage.devices.append(orjson.loads(text))
        except orjson.JSONDecodeError as e:
            salvage.problems.append(f"device {device_id!r}: not valid JSON ({e}); it cannot be saved")


def examine(state_dir: Path) -> Salvage:
    """Reads a store read-only: what is wrong with it, and what can be read."""
    path = Path(state_dir) / DB_NAME
    if not path.is_file():
        raise StoreError(f"{path}: there is no store here")
    salvage = Salvage()
    wal = examine_wal(path)  # before SQLite opens the file and replays what it can of the WAL
    if wal is not None and wal.lost_commits:
        salvage.problems.append(f"{wal.problem}; they are lost to SQLite (recover keeps the WAL with the "
                                "damaged files)")
    db = copy = None
    try:
        db, copy = read_only_connection(path)
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as e:
        if db is not None:
            db.close()
        if copy is not None:
            copy.cleanup()
        salvage.problems.append(f"not readable as an SQLite database ({e}); nothing can be saved")
        return salvage
    try:
        if app_id != APPLICATION_ID:
            salvage.problems.append("an SQLite database, but not a hubrt store")
            return salvage
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            salvage.problems.append(f"written by a newer hubrt (store version {version}); upgrade hubrt")
            return salvage
        try:
            integrity = [row[0] for row in db.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as e:
            integrity = [str(e)]
        if integrity != ["ok"]:
            salvage.problems.append("SQLite integrity check: " + "; ".join(integrity[:5]))
        _read_rows(db, salvage)
        _read_devices(db, salvage)
    finally:
        db.close()
        if copy is not None:
            copy.cleanup()
    return salvage


class NotDamaged(StoreError):
    """`recover` was asked to replace a store that is sound."""


def recover(state_dir: Path, force: bool = False) -> tuple[Salvage, Path]:
    """Writes what can be read into a new store that takes the damaged one's place; the damaged
    file is kept under a new name. Returns (salvage, the kept file)."""
    state_dir = Path(state_dir)
    path = state_dir / DB_NAME
    if not path.is_file():  # before taking the lock, which would make the folder
        raise StoreError(f"{path}: there is no store here")
    lock = lock_state_dir(state_dir)  # no hub may use the store meanwhile
    try:
        salvage = examine(state_dir)
        if not salvage.problems and not force:
            raise NotDamaged(f"{path}: the store is not damaged; nothing was changed (--force rebuilds it anyway)")
        with tempfile.TemporaryDirectory(prefix=".recovering-", dir=state_dir) as tmp:
            _write_new_store(Path(tmp), salvage)  # a full disk stops here: the live store is untouched
            aside = aside_name(path)
            for suffix in WAL_SUFFIXES:  # keep the damaged files (links: the live name stays until the swap)
                if Path(str(path) + suffix).exists():
                    os.link(str(path) + suffix, str(aside) + suffix)
            _sync_dir(state_dir)
            for suffix in WAL_SUFFIXES[1:]:  # the old WAL must not be read as the new store's
                Path(str(path) + suffix).unlink(missing_ok=True)
            os.replace(Path(tmp) / DB_NAME, path)
            _sync_dir(state_dir)
    except OSError as e:
        raise StoreError(f"{path}: could not recover the store ({e.strerror or e}); the damaged store is still "
                         f"in place") from None
    finally:
        lock.close()
    return salvage, aside


def _write_new_store(folder: Path, salvage: Salvage) -> None:
    store = Store(folder)
    try:
        for driver, rows in salvage.rows.items():
            store.save(driver, dict(rows))
        for record in salvage.devices:
            store.put_device(record["id"], record)
        store.close()  # flushed, and SQLite folds its WAL into the file as the last connection closes
    except BaseException:
        if not store.closed:
            store.lose_power()
        raise
    for suffix in WAL_SUFFIXES[1:]:
        if Path(str(folder / DB_NAME) + suffix).exists():
            raise StoreError(f"{folder}: the new store was not written whole")


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
