"""Text that drivers make (labels, logs, event values), made safe to print on a terminal.

A control character in a device label or a log line would drive the terminal (colours,
cursor moves, a cleared screen, a changed window title): it is shown as an escape instead.
Newlines and tabs stay.
"""

_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7f, 0xa0)] if c not in (0x09, 0x0a)}


def printable(value: object) -> str:
    return str(value).translate(_CONTROLS)
