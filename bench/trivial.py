"""A driver package of trivial Lua tests, for the per-test benchmarks (run.py, instructions.py).
No hubrt import here: instructions.py measures other revisions' hubrt with it."""

from __future__ import annotations

import os
import time
from pathlib import Path

TRIVIAL_TEST = 'test("t{i}", function() local x = 1 + 1; assert(x == 2) end)\n'


def trivial_tests(folder: Path, files: int, per_file: int) -> Path:
    """A driver package with `files` test files of `per_file` trivial Lua tests each (t0, t1...)."""
    pkg = folder / "overhead"
    (pkg / "src" / "test").mkdir(parents=True)
    (pkg / "profiles").mkdir()
    (pkg / "config.yml").write_text("name: overhead\npackageKey: overhead\n")
    (pkg / "profiles" / "p.yml").write_text("name: p\ncomponents:\n  - id: main\n    capabilities:\n"
                                           "      - id: switch\n")
    (pkg / "src" / "init.lua").write_text('require("st.driver")("overhead", {}):run()\n')
    for f in range(files):
        body = 'local test = require "hubrt.test"\n' + "".join(TRIVIAL_TEST.format(i=i) for i in range(per_file))
        (pkg / "src" / "test" / f"test_{f}.lua").write_text(body)
    # as a suite's files are when it runs: not written this second (hubrt re-reads a package whose
    # time stamps have not settled yet, and how many tests fall in that second depends on the pace)
    past = time.time() - 10
    for folder_path, folders, names in os.walk(pkg):
        for name in [*folders, *names]:
            os.utime(os.path.join(folder_path, name), (past, past))
    os.utime(pkg, (past, past))
    return pkg
