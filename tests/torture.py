"""Crash torture: SIGKILL a real `hubrt run` at random moments and check the store.

The torture driver (tests/fixtures/torture) moves its whole datastore from
generation g-1 to g on every tick, commits every 7th tick and logs
"committed g" once the commit has returned. After each kill the store must:
open; hold, for the driver, exactly one generation's consistent snapshot
(never a mix of two); hold at least the last generation acknowledged by a
commit; and list readable device records. Every few kills a graceful stop
(SIGTERM) is made instead, after which nothing saved may be missing.

    python tests/torture.py --kills 1000       # the long campaign (docs/reliability.md)
"""

from __future__ import annotations

import argparse
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hubrt.store import Store  # noqa: E402

DRIVER = ROOT / "tests" / "fixtures" / "torture"
KEEP = 10
_COMMITTED = re.compile(r"committed (\d+)")
_SHUTDOWN = re.compile(r"shutdown at (\d+)")


def check_snapshot(data: dict) -> int:
    """Raises AssertionError unless `data` is one generation's consistent snapshot; returns the generation."""
    g = data.get("gen", 0)
    if g == 0:
        assert data.get("history") in (None, {}), data
        return 0
    assert data["double"] == 2 * g, f"double {data['double']} in generation {g}"
    assert data["nested"] == {"a": {"b": g}}, f"nested {data['nested']} in generation {g}"
    assert data["recent"] == [g - 2, g - 1, g], f"recent {data['recent']} in generation {g}"
    expected = {f"g{i}": {"gen": i, "text": "x" * (i % 50)} for i in range(max(1, g - KEEP + 1), g + 1)}
    assert data["history"] == expected, f"history keys {sorted(data['history'])} in generation {g}"
    return g


@dataclass
class Result:
    kills: int = 0
    graceful: int = 0
    generations: list[int] = field(default_factory=list)
    acked_lost: int = 0  # must stay 0
    seconds: float = 0.0


def _run_once(state: Path, engine: str, rng: random.Random, graceful: bool, previous: int) -> tuple[int, int]:
    """Runs the torture driver until a random moment, then kills (or stops) it; returns (acked, stored gen)."""
    script = state.parent / "forever.yml"
    script.write_text("- advance: 100000000\n")
    proc = subprocess.Popen([sys.executable, "-m", "hubrt", "run", str(DRIVER), "--script", str(script),
                             "--state", str(state), "--lua", engine], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    acked = [previous]
    shutdown: list[int] = []
    tail: list[str] = []  # the last lines, to explain a failure
    started = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            tail.append(line)
            del tail[:-15]
            found = _COMMITTED.search(line)
            if found:
                acked.append(int(found[1]))
                started.set()
            found = _SHUTDOWN.search(line)
            if found:
                shutdown.append(int(found[1]))
        started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    started.wait(30)
    time.sleep(rng.uniform(0.0, 0.4))
    proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
    proc.wait(30)
    reader.join(30)
    store = Store(state)
    try:
        g = check_snapshot(store.load("torture"))
        store.devices()  # readable
    finally:
        store.lose_power()  # look, do not write
    if graceful:
        assert shutdown and g == shutdown[0], (f"graceful stop at generation {shutdown}, the store holds {g}; "
                                               f"exit {proc.returncode}; last output:\n{''.join(tail)}")
    return max(acked), g


def campaign(kills: int, engine: str = "luajit", seed: int = 0, graceful_every: int = 10,
             log=print) -> Result:
    rng = random.Random(seed)
    result = Result()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hubrt-torture-") as tmp:
        state = Path(tmp) / "state"
        acked_before = 0
        for i in range(1, kills + 1):
            graceful = graceful_every and i % graceful_every == 0
            acked, g = _run_once(state, engine, rng, bool(graceful), acked_before)
            if g < acked:
                result.acked_lost += 1
            assert g >= acked, f"run {i}: generation {acked} was acknowledged by commit, the store holds {g}"
            if graceful:
                result.graceful += 1
            else:
                result.kills += 1
            result.generations.append(g)
            acked_before = g  # the next run starts from what survived
            if i % 50 == 0:
                log(f"{i} runs, store at generation {g}")
    result.seconds = time.monotonic() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=1000, help="number of runs (default 1000)")
    parser.add_argument("--lua", default="luajit", choices=["luajit", "5.3"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    r = campaign(args.kills, args.lua, args.seed)
    print(f"engine {args.lua}: {r.kills} SIGKILLs and {r.graceful} graceful stops in {r.seconds:.0f} s; "
          f"every store opened and held one consistent generation; "
          f"commit-acknowledged generations lost: {r.acked_lost}; final generation {r.generations[-1]}")


if __name__ == "__main__":
    main()
