"""Instructions per Lua test and per capability command, counted by valgrind (`make bench`).

Timings on these machines vary by up to 2x within minutes, so a change of a few percent cannot
be told from noise by timing it. An instruction count can: cachegrind counts every instruction
the process runs, the same on every run. Each workload is counted at two sizes and the
difference divided by the extra work, so start-up cancels out.

  python bench/instructions.py              # this tree
  python bench/instructions.py 0576c79 HEAD # revisions side by side (git worktrees in a temp dir)

The workloads:
  - a trivial Lua test in a file of ten (`TestFile.run`: two Lua states, the file's top level, a
    hub and its store, the driver started and stopped), as the pytest plugin runs each test;
  - a capability command through the flagship driver as its worker handles it, in batches of 16
    (the driver's Lua, the crossings, the datastore, the batch's save and the JSON both ways), in
    the hub's process so that batches are the same on every run. It uses the worker's own
    classes, so a revision without them says n/a.
Counts repeat within about 0.3% (temporary paths differ). Instructions are not time (cache misses,
branches), but at an equal count the time is rarely far apart, and a count that grows is always
worth a look.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from trivial import trivial_tests

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"test": (10, 40), "command": (1000, 5000)}


def run_tests(n: int, root: Path) -> None:
    from hubrt.testing import TestFile, TestOptions

    with tempfile.TemporaryDirectory() as tmp:
        test_file = TestFile(trivial_tests(Path(tmp), 1, 10) / "src" / "test" / "test_0.lua")  # (as make bench)
        options = TestOptions(out=lambda line: None)
        for _ in range(n):
            test_file.run("t0", options)


def run_commands(n: int, root: Path) -> None:
    import gc

    import orjson

    import hubrt.hub
    import hubrt.worker
    from hubrt.driver import DriverOptions
    from hubrt.hub import Hub

    def watched_inline(self, package):  # a worker process's Lua state (watched), kept in this process
        options = DriverOptions(self.engine, self.strict, self.max_memory, self.handler_timeout, self.network,
                                watched=True)
        return hubrt.worker.InlineWorker(package.package_key, package, options, self._serve, self._stopping)

    hubrt.hub.Hub._new_worker = watched_inline
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(Path(tmp) / "state", engine="luajit", on_log=lambda record: None, isolation="inline")
        hub.install(root / "drivers" / "virtual-dimmer")
        device = hub.add_device("virtual-dimmer", "dimmer", label="Lamp").id
        worker = hub.drivers["virtual-dimmer"].worker
        told: list[dict] = []
        worker.link._notify = told.append  # what a worker process would send the hub
        frames = [orjson.dumps({"op": "command", "what": "capability switch.on for Lamp", "now": 0.0, "real": False,
                                "device": device, "capability": "switch", "component": "main",
                                "command": "on" if i % 2 else "off", "args": {}}) for i in range(n)]
        gc.freeze()  # as a worker process starts
        gc.set_threshold(getattr(hubrt.worker, "GC_THRESHOLD", 700))

        def reply(message: dict, more: bool) -> None:
            told.append(message)
            if not more:
                worker.end_batch()

        for i in range(0, n, 16):
            worker.handle_all([orjson.loads(f) for f in frames[i:i + 16]], reply)
            orjson.dumps(told)
            told.clear()


def count(root: Path, workload: str, n: int) -> int | None:
    """Instructions of one run of the workload on the hubrt at `root` (None if it cannot run there)."""
    result = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
         sys.executable, __file__, "--workload", workload, str(n), str(root)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})  # (dict layouts alike)
    found = re.search(r"I\s+refs:\s+([\d,]+)", result.stderr)
    if result.returncode != 0 or found is None:
        return None
    return int(found.group(1).replace(",", ""))


def marginal(root: Path, workload: str) -> float | None:
    small, large = SIZES[workload]
    a, b = count(root, workload, small), count(root, workload, large)
    return None if a is None or b is None else (b - a) / (large - small)


def main(revisions: list[str]) -> None:
    if shutil.which("valgrind") is None:
        print("  valgrind is not installed, so instructions were not counted (apt-get install valgrind)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        trees = [("this tree", ROOT)]
        if revisions:
            trees = []
            for rev in revisions:
                tree = Path(tmp) / re.sub(r"[^\w.-]", "_", rev)
                subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), rev],
                               check=True, capture_output=True)
                trees.append((rev, tree))
        try:
            figures = {name: {w: marginal(tree, w) for w in SIZES} for name, tree in trees}
        finally:
            for name, tree in trees:
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "-f", str(tree)], capture_output=True)
    first = figures[trees[0][0]]
    for name, fig in figures.items():
        parts = []
        for workload, label in (("test", "per Lua test"), ("command", "per command")):
            value = fig[workload]
            if value is None:
                parts.append(f"{label}: n/a")
                continue
            text = f"{label}: {value / 1e6:.3f}M" if workload == "test" else f"{label}: {value / 1e3:.1f}K"
            if name != trees[0][0] and first[workload]:
                text += f" ({value / first[workload]:.3f}x {trees[0][0]})"
            parts.append(text)
        print(f"  instructions, {name}: " + ";  ".join(parts))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--workload"]:
        workload, n, root = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        sys.path.insert(0, root)
        os.chdir(root)
        {"test": run_tests, "command": run_commands}[workload](n, Path(root))
    else:
        main(sys.argv[1:])
