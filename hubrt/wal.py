"""Reading an SQLite write-ahead log the way SQLite does, to say what it would drop.

After a crash, SQLite replays the WAL only up to the first frame whose checksum
fails, silently: one flipped byte in the middle loses every commit after it. This
module walks the WAL with the checksum rule of SQLite's file format (a running
pair of 32-bit sums over the header and over each frame) and reports commits
that were written whole but can no longer be read, so that the store is called
damaged instead of being opened with those commits missing. Frames after the
last commit of the log (a transaction cut short by the crash) are normal and are
not reported.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

_MAGIC = {0x377F0682: "<", 0x377F0683: ">"}  # byte order of the checksummed words
_HEADER = struct.Struct(">8I")
_FRAME = struct.Struct(">6I")


@dataclass
class WalReport:
    frames: int  # frames of the current log (its salts), readable or not
    readable: int  # frames SQLite replays: up to the last commit before the first bad frame
    lost_commits: int  # commits written after a frame that fails its checksum
    problem: str = ""


def _checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def _db_page_size(db: Path) -> int:
    """The page size in the database file's header (bytes 16-17; 1 stands for 65536)."""
    try:
        with open(db, "rb") as f:
            f.seek(16)
            size = int.from_bytes(f.read(2), "big")
    except OSError:
        size = 0
    return 65536 if size == 1 else size if size >= 512 and not size & (size - 1) else 4096


def examine_wal(db: Path) -> WalReport | None:
    """What SQLite would make of db's WAL file, or None when there is none (or nothing in it)."""
    try:
        data = Path(str(db) + "-wal").read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < _HEADER.size + _FRAME.size:
        return None
    magic, _, page_size, _, salt1, salt2, c1, c2 = _HEADER.unpack_from(data)
    order = _MAGIC.get(magic)
    if order is None or _checksum(data[:24], order, 0, 0) != (c1, c2):
        # SQLite ignores the whole log. Its frames, counted with the database's own page size:
        frame_size = _FRAME.size + _db_page_size(db)
        count = (len(data) - _HEADER.size) // frame_size
        commits = sum(1 for i in range(count) if _FRAME.unpack_from(data, _HEADER.size + i * frame_size)[1])
        if not commits:
            return None
        return WalReport(count, 0, commits, "the WAL header fails its checksum, so none of the "
                                            f"{commits} commit(s) in the WAL can be read")
    frame_size = _FRAME.size + page_size
    count = (len(data) - _HEADER.size) // frame_size
    # frames written under this log's salts, whatever their checksums, and which of them end a commit
    ours = [(i, _FRAME.unpack_from(data, _HEADER.size + i * frame_size)) for i in range(count)]
    ours = [(i, h) for i, h in ours if (h[2], h[3]) == (salt1, salt2)]
    commits = [i for i, h in ours if h[1] != 0]
    s0, s1 = c1, c2
    readable = 0
    for i in range(count):
        offset = _HEADER.size + i * frame_size
        header = _FRAME.unpack_from(data, offset)
        if (header[2], header[3]) != (salt1, salt2):
            break
        s0, s1 = _checksum(data[offset:offset + 8], order, s0, s1)
        s0, s1 = _checksum(data[offset + _FRAME.size:offset + frame_size], order, s0, s1)
        if (s0, s1) != (header[4], header[5]):
            break
        if header[1] != 0:
            readable = i + 1
    lost = [i for i in commits if i >= readable]
    if not lost:
        return WalReport(len(ours), readable, 0)
    return WalReport(len(ours), readable, len(lost),
                     f"frame {readable + 1} of the WAL fails its checksum, so the {len(lost)} commit(s) written "
                     "after it cannot be read")
