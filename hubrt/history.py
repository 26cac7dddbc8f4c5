"""What the hub remembers of its events and its logs: the most recent ones.

A hub under `hubrt run` may run for days, and a Lua test may advance a year of timers: kept
whole, either record would grow until the machine runs out of memory. Each keeps its last
`limit` entries and counts those it let go; the hub says so in its log when it first lets one go.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

HISTORY_LIMIT = 100_000

T = TypeVar("T")


class History(deque, Generic[T]):
    """A list of the last `limit` entries (append, iterate, index, len, clear)."""

    def __init__(self, limit: int | None = None) -> None:
        super().__init__(maxlen=limit or HISTORY_LIMIT)
        self.dropped = 0  # entries let go since the last clear

    def append(self, entry: T) -> None:
        if len(self) == self.maxlen:
            self.dropped += 1
        super().append(entry)

    def clear(self) -> None:
        super().clear()
        self.dropped = 0
