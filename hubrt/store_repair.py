"""`hubrt store check` and `hubrt store recover`: say what is wrong with a store, save what can be saved.

Checking opens the file read-only and changes nothing. Recovering reads every
row that can still be read and decoded, moves the damaged file aside (it is
never deleted) and writes what was read into a new store.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from hubrt.store import APPLICATION_ID, DB_NAME, SCHEMA_VERSION, Store, StoreError, row_crc


@dataclass
class Salvage:
    """What could be read from a store file."""

    rows: dict[str, dict[str, str]] = field(default_factory=dict)  # driver -> key -> JSON text
    devices: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def keys(self) -> int:
        return sum(len(r) for r in self.rows.values())


def _connect_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


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
    salvage = Salvage()
    if not path.is_file():
        raise StoreError(f"{path}: there is no store here")
    try:
        db = _connect_read_only(path)
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
    except sqlite3.DatabaseError as e:
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
    return salvage


def recover(state_dir: Path) -> tuple[Salvage, Path | None]:
    """Writes what can be read into a new store; the damaged file is moved aside. Returns (salvage, aside)."""
    salvage = examine(state_dir)
    store = Store(state_dir, start_empty=True)
    try:
        for driver, rows in salvage.rows.items():
            store.save(driver, dict(rows))
        store.flush()
        for record in salvage.devices:
            store.put_device(record["id"], record)
    finally:
        store.lose_power()  # everything was flushed above; nothing else to write
    return salvage, store.moved_aside
