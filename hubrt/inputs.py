"""Files that people write (driver packages, capability definitions, scenarios).

Every problem with them is an InputError whose message names the file, and the
line where YAML can tell, so the CLI can show it as one line instead of a
traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# libyaml's parser when PyYAML was built with it: several times faster
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputError(Exception):
    """Bad input; the message names the file (and line) and what is wrong."""


def read_yaml(path: Path) -> Any:
    """Parses a YAML (or JSON) file; a syntax error names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"{where}: invalid YAML: {problem}") from None
