"""Hub time: the clock and the drivers' timers.

Virtual time (tests, scenarios) moves only when the hub advances it, and the hub
advances it only once every driver is idle, so runs are deterministic however
many worker processes there are. Timers sit in one heap, ordered by when they
are due and, at the same time, by when they were set -- the same order on every
run.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class Clock:
    """Hub time in seconds. Virtual time moves only when told (tests, scenarios);
    real time follows the wall clock."""

    def __init__(self, real: bool = False) -> None:
        self.real = real
        self._start = time.monotonic()
        self._epoch = time.time()  # the wall time when the hub started
        self._virtual = 0.0

    def now(self) -> float:
        return time.monotonic() - self._start if self.real else self._virtual

    def epoch_seconds(self) -> float:
        """Hub time as the wall time it stands for: what drivers' os.time() answers."""
        return self._epoch + self.now()

    def wait_until(self, t: float, stop: Callable[[], bool] = lambda: False,
                   tick: Callable[[], None] = lambda: None) -> None:
        """Moves (virtual) or waits (real) until hub time `t`; a real wait calls `tick` every few
        milliseconds and ends early once `stop()`."""
        if not self.real:
            self._virtual = max(self._virtual, t)
            return
        while not stop():
            tick()
            left = t - self.now()
            if left <= 0:
                return
            time.sleep(min(left, 0.005))


@dataclass(order=True)
class Timer:
    due: float
    seq: int
    id: int = field(compare=False)  # the id the driver's worker gave it
    driver: str = field(compare=False)
    interval: float | None = field(compare=False)  # None: fires once
    name: str | None = field(compare=False)


class Timers:
    """Every driver's timers, keyed by (driver, the id its worker gave the timer)."""

    def __init__(self) -> None:
        self._live: dict[tuple[str, int], Timer] = {}
        self._heap: list[Timer] = []
        self._seq = itertools.count(1)

    def start(self, driver: str, timer_id: int, due: float, interval: float | None, name: str | None) -> None:
        timer = Timer(due, next(self._seq), timer_id, driver, interval, name)
        self._live[driver, timer_id] = timer
        heapq.heappush(self._heap, timer)

    def cancel(self, driver: str, timer_id: int) -> None:
        self._live.pop((driver, timer_id), None)

    def forget(self, driver: str | None = None) -> None:
        """Drops a driver's timers (every driver's without one)."""
        for key in [key for key in self._live if driver is None or key[0] == driver]:
            del self._live[key]
        if driver is None:
            self._heap.clear()

    def any_due(self, end: float) -> bool:
        """Whether a live timer is due by `end` (nothing is taken off)."""
        while self._heap and self._live.get((self._heap[0].driver, self._heap[0].id)) is not self._heap[0]:
            heapq.heappop(self._heap)  # a cancelled timer: dropped now rather than later
        return bool(self._heap) and self._heap[0].due <= end

    def pop_due(self, end: float) -> Timer | None:
        """The next timer due by `end`, taken off (a repeating one set again for its next time)."""
        while self._heap and self._heap[0].due <= end:
            timer = heapq.heappop(self._heap)
            if self._live.get((timer.driver, timer.id)) is not timer:
                continue  # cancelled
            if timer.interval is None:
                del self._live[timer.driver, timer.id]
                return timer
            fired = Timer(timer.due, timer.seq, timer.id, timer.driver, timer.interval, timer.name)
            timer.due += max(timer.interval, 0.001)
            heapq.heappush(self._heap, timer)
            return fired
        return None
