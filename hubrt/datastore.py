"""The Python half of `require "datastore"`: validator, mirror and persister.

Every Lua<->Python crossing of the datastore is in this module (the Lua half is
`lua/host/datastore.lua`). Each datastore table in Lua is a view with a
`Node` here; the view's `__newindex` calls `Node.write(key, value)`, which
validates the assignment against the contract (spec/datastore.md section 3),
mirrors it, and marks the top-level key dirty. `save` encodes only the dirty
top-level keys, so it costs in proportion to what changed.

Strings cross as bytes (the Lua state uses `encoding=None`), which is how a
non-UTF-8 string can be reported instead of crashing lupa's conversion.
"""

from __future__ import annotations

import itertools
import math
import re
import weakref
from typing import Any, Callable

import orjson

from hubrt.engine import LuaState
from hubrt.store import Store, StoreError

RESERVED = frozenset({b"init", b"save", b"commit", b"is_dirty", b"load", b"_force_save"})
UNSUPPORTED = "Data store keys and values must be JSON encodable: {} is of unsupported type {}"
METATABLE = "datastore table values should be simple and not include metatable functionality"
PROTECTED = "Key: {} refers to a protected method, do not overwrite."
ROOT_NAME = "datastore"

_MISSING = object()
_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*\Z")
_INTEGER_TEXT = re.compile(rb"-?[0-9]+\Z")


class Rejected(Exception):
    """An assignment the datastore refuses; the message is shown to the driver."""


class _Sink:
    """Dirty set of a view that is no longer part of the datastore."""

    def add(self, key: Any) -> None:
        pass


_SINK = _Sink()


def key_text(key: Any) -> bytes:
    """A Lua key as it is written in JSON (numbers as Lua's tostring prints them)."""
    if type(key) is bytes:
        return key
    if type(key) is int:
        return str(key).encode()
    if math.isinf(key):
        return b"inf" if key > 0 else b"-inf"
    return (b"%.14g" % key)


def _number_of_key_text(text: bytes) -> Any:
    """The number key whose JSON text is `text`, if there is one."""
    if _INTEGER_TEXT.match(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return None
    return number if key_text(number) == text else None


def _show_key(key: Any) -> str:
    if type(key) is bytes:
        if _IDENTIFIER.match(key):
            return "." + key.decode()
        return "[" + orjson.dumps(key.decode("utf-8", "replace")).decode() + "]"
    return "[" + key_text(key).decode() + "]"


def _show_value(value: Any) -> str:
    if type(value) is bytes:
        return orjson.dumps(value.decode("utf-8", "replace")).decode()
    return key_text(value).decode() if type(value) is float else str(value)


def _clash(path: str, number: Any) -> Rejected:
    text = key_text(number).decode()
    return Rejected(f'{path}: keys {text} and "{text}" would both be saved as "{text}"')


def _is_utf8(s: bytes) -> bool:
    if s.isascii():
        return True
    try:
        s.decode()
    except UnicodeDecodeError:
        return False
    return True


class Node:
    """The mirror of one datastore table, and the validator of writes into it."""

    __slots__ = ("ds", "id", "data", "parent", "key", "top", "dirty", "n_num", "n_odd", "max_int", "__weakref__")

    def __init__(self, ds: Datastore, parent: Node | None, key: Any, top: Any) -> None:
        self.ds = ds
        self.id = next(ds.ids)
        self.data: dict = {}
        self.parent = parent
        self.key = key
        self.top = top
        self.dirty = ds.dirty
        self.n_num = 0  # number keys
        self.n_odd = 0  # number keys that are not positive integers
        self.max_int = 0
        ds.nodes[self.id] = self

    # -- the hot path: one call per assignment from Lua --------------------

    def write(self, k: Any, v: Any) -> Any:
        if type(k) is not bytes or self.n_num or not (k.isascii() or _is_utf8(k)):
            return self.write_checked(k, v)
        tv = type(v)
        if tv is bytes:
            if not (v.isascii() or _is_utf8(v)):
                return self.write_checked(k, v)
        elif tv is float:
            if v - v != 0.0:  # NaN or infinity
                return self.write_checked(k, v)
        elif tv is not int and tv is not bool:
            return self.write_checked(k, v)
        top = self.top
        if top is None:  # the datastore itself: keys are the top-level keys
            if k in RESERVED:
                return self.write_checked(k, v)
            top = k
        data = self.data
        old = data.get(k)
        if type(old) is Node:
            old.detach()
        data[k] = v
        self.dirty.add(top)
        return None

    # -- everything else ---------------------------------------------------

    def write_checked(self, k: Any, v: Any) -> Any:
        """Validates fully, applies, and tells Lua (ok, warning, replacement)."""
        try:
            return self._write_checked(k, v)
        except Rejected as e:
            return False, str(e).encode()

    def _write_checked(self, k: Any, v: Any) -> Any:
        ds = self.ds
        path = self.path()
        key = self._check_key(k, path)
        at = path + _show_key(key)
        warnings: list[tuple[str, str, str]] = []
        replacement = None
        plan = None
        if v is None:
            value = None
        elif ds.lua_type(v) == "table":
            plan = ds.plan_table(v, at, warnings)
        else:
            value = ds.check_scalar(v, at, warnings)
        old = self.data.get(key, _MISSING)
        if v is not None or old is not _MISSING:
            self._check_shape(key, v is None, path, warnings)
        message = ds.warnings_text(warnings)
        if message and ds.strict:
            raise Rejected(message + " (strict mode)")
        # Validated: from here on nothing can refuse the write.
        if type(old) is Node:
            old.detach()
        if plan is not None:
            value, replacement = ds.build(plan, self, key)
        self._set(key, value, old)
        self.dirty.add(self.top if self.parent is not None else key)
        if message or replacement is not None:
            return True, (message.encode() if message else None), replacement
        return None

    def _check_key(self, k: Any, path: str) -> Any:
        tk = type(k)
        if tk is bytes:
            if not _is_utf8(k):
                raise Rejected(f"a key of {path} is a string that is not valid UTF-8; "
                               "base64-encode binary data before storing it")
            if self.parent is None and k in RESERVED:
                raise Rejected(PROTECTED.format(k.decode()))
            return k
        if tk is int or tk is float:
            return k
        text, lua_type = self.ds.describe(k)
        raise Rejected(UNSUPPORTED.format(text, lua_type) + f" (a key of {path}; JSON keys are strings)")

    def _shape_after(self, key: Any, deleting: bool) -> tuple[int, int, int, int]:
        """(number keys, odd number keys, largest positive integer key, size) after the change."""
        data = self.data
        exists = key in data
        change = -exists if deleting else (not exists)
        size = len(data) + change
        if type(key) is bytes or not change:
            return self.n_num, self.n_odd, self.max_int, size
        n_num = self.n_num + change
        if not (type(key) is int and key > 0):
            return n_num, self.n_odd + change, self.max_int, size
        if change > 0:
            return n_num, self.n_odd, max(self.max_int, key), size
        if key != self.max_int:
            return n_num, self.n_odd, self.max_int, size
        if self.n_odd == 0 and n_num == key - 1:  # the rest is 1..key-1
            return n_num, 0, key - 1, size
        return n_num, self.n_odd, max((k for k in data if type(k) is int and k != key), default=0), size

    def _check_shape(self, key: Any, deleting: bool, path: str, warnings: list) -> None:
        """Refuses JSON key clashes; warns when number keys will come back as strings."""
        is_number = type(key) is not bytes
        if not is_number and not self.n_num:
            return
        if not deleting and key not in self.data:
            twin = key_text(key) if is_number else _number_of_key_text(key)
            if twin is not None and twin in self.data:
                raise _clash(path, key if is_number else twin)
        n_num, n_odd, max_int, size = self._shape_after(key, deleting)
        if self.parent is None:
            bad = is_number and not deleting
        else:
            bad = n_num > 0 and not (n_odd == 0 and n_num == size == max_int)
        if bad:
            warnings.append((path, "keys", f"{path}: number keys of "
                             + ("a table that is not a 1..n sequence" if self.parent else "the datastore itself")
                             + " come back as string keys after a restart"))

    def _set(self, key: Any, value: Any, old: Any) -> None:
        if value is None and old is _MISSING:
            return
        self.n_num, self.n_odd, self.max_int, _ = self._shape_after(key, value is None)
        if value is None:
            del self.data[key]
        else:
            self.data[key] = value

    def is_sequence(self) -> bool:
        return self.n_num > 0 and self.n_odd == 0 and self.n_num == len(self.data) == self.max_int

    def path(self) -> str:
        parts = []
        node = self
        while node.parent is not None:
            parts.append(_show_key(node.key))
            node = node.parent
        return ROOT_NAME + "".join(reversed(parts))

    def detach(self) -> None:
        """This table left the datastore: later writes to it persist nothing."""
        self.dirty = _SINK
        for v in self.data.values():
            if type(v) is Node:
                v.detach()

    def to_json(self) -> Any:
        """The JSON document of this table, as the hub would save it."""
        data = self.data
        if self.is_sequence():
            return [_json_value(data[i]) for i in range(1, self.n_num + 1)]
        return {key_text(k).decode(): _json_value(v) for k, v in data.items()}

    def template(self) -> dict:
        return {k: (v.template() if type(v) is Node else v) for k, v in self.data.items()}


def _json_value(v: Any) -> Any:
    tv = type(v)
    if tv is bytes:
        return v.decode()
    if tv is Node:
        return v.to_json()
    return v  # orjson writes NaN and infinity as null, as the hub's JSON does


def _template_from_json(doc: Any) -> Any:
    """A loaded JSON value in mirror form (strings as bytes, arrays as 1..n keys)."""
    if type(doc) is str:
        return doc.encode()
    if type(doc) is dict:
        return {k.encode(): _template_from_json(v) for k, v in doc.items() if v is not None}
    if type(doc) is list:
        return {i: _template_from_json(v) for i, v in enumerate(doc, 1) if v is not None}
    return doc


class _Plan:
    """A validated table value, not yet turned into a view."""

    __slots__ = ("table", "items", "view")

    def __init__(self, table: Any, items: dict, view: Node | None = None) -> None:
        self.table = table
        self.items = items
        self.view = view  # a view that is already in the datastore: stored as a copy


class Datastore:
    """One driver's datastore: the Python side of its views, and its saved state."""

    def __init__(
        self,
        state: LuaState,
        store: Store,
        driver: str,
        *,
        strict: bool = False,
        warn: Callable[[str], None] = print,
    ) -> None:
        self.state = state
        self.store = store
        self.driver = driver
        self.strict = strict
        self._warn = warn
        self._warned: set[tuple[str, str]] = set()
        self.ids = itertools.count(1)
        self.nodes: weakref.WeakValueDictionary[int, Node] = weakref.WeakValueDictionary()
        self.dirty: set = set()
        self.lua_type = state.lupa.lua_type
        self.api = state.host_chunk("datastore.lua")(state.table(
            warn=self._lua_warn,
            save=self.save,
            force_save=self.force_save,
            is_dirty=lambda: bool(self.dirty),
            commit=self.commit,
            load=self.load,
        ))
        self.describe = self.api.describe
        self.root = Node(self, None, None, None)
        self.root_view = self.api.make_root(self.root.write, self.root.id)
        self.load()
        state.preload("datastore", state.runtime.eval(b"function(m) return function() return m end end")(self.api.module))

    # -- validation helpers used by Node -------------------------------------

    def check_scalar(self, v: Any, at: str, warnings: list) -> Any:
        tv = type(v)
        if tv is bytes:
            if not _is_utf8(v):
                raise Rejected(f"{at} is a string that is not valid UTF-8; "
                               "base64-encode binary data before storing it")
        elif tv is float:
            if v != v or math.isinf(v):
                warnings.append((at, "nan", f"{at} = {_show_value(v)} comes back as nil after a restart "
                                            "(JSON has no NaN or infinity)"))
        elif tv is not int and tv is not bool:
            text, lua_type = self.describe(v)
            raise Rejected(UNSUPPORTED.format(text.decode("utf-8", "replace"), lua_type.decode())
                           + f" (at {at})")
        return v

    def plan_table(self, t: Any, at: str, warnings: list, seen: dict | None = None) -> _Plan:
        """Validates a table value completely, changing nothing."""
        kind, ident = self.api.inspect(t)
        if kind == 2:
            raise Rejected(f"{METATABLE} (at {at})")
        if kind == 1:
            node = self.nodes.get(ident)
            if node is None:  # pragma: no cover - a live view always has its node
                raise Rejected(f"{at}: this datastore table is no longer valid")
            return _Plan(t, {}, view=node)
        seen = {} if seen is None else seen
        if ident in seen:
            first = seen[ident]
            if at.startswith(first + ".") or at.startswith(first + "["):
                raise Rejected(f"{at}: the table contains itself (a cycle), which cannot be saved as JSON")
            raise Rejected(f"{at}: the same table also appears at {first}; the datastore saves trees, "
                           "so store a copy instead")
        seen[ident] = at
        items: dict = {}
        n_num = n_odd = max_int = 0
        for k, v in t.items():
            tk = type(k)
            if tk is bytes:
                if not _is_utf8(k):
                    raise Rejected(f"a key of {at} is a string that is not valid UTF-8; "
                                   "base64-encode binary data before storing it")
            elif tk is int or tk is float:
                n_num += 1
                if tk is int and k > 0:
                    max_int = max(max_int, k)
                else:
                    n_odd += 1
            else:
                text, lua_type = self.describe(k)
                raise Rejected(UNSUPPORTED.format(text.decode("utf-8", "replace"), lua_type.decode())
                               + f" (a key of {at}; JSON keys are strings)")
            child_at = at + _show_key(k)
            if self.lua_type(v) == "table":
                items[k] = self.plan_table(v, child_at, warnings, seen)
            else:
                items[k] = self.check_scalar(v, child_at, warnings)
        if n_num:
            if n_odd or max_int != n_num or n_num != len(items):
                for k in list(items):
                    twin = key_text(k) if type(k) is not bytes else None
                    if twin is not None and twin in items:
                        raise _clash(at, k)
                warnings.append((at, "keys", f"{at}: number keys of a table that is not a 1..n sequence "
                                             "come back as string keys after a restart"))
        del seen[ident]
        return _Plan(t, items)

    def build(self, plan: _Plan, parent: Node, key: Any) -> tuple[Node, Any]:
        """Turns a validated plan into views; returns (node, replacement or None)."""
        top = parent.top if parent.parent is not None else key
        if plan.view is not None:
            return self._new_view(plan.view.template(), parent, key, top)
        node = Node(self, parent, key, top)
        replacements = {}
        for k, item in plan.items.items():
            if type(item) is _Plan:
                child, replacement = self.build(item, node, k)
                if replacement is not None:
                    replacements[k] = replacement
                item = child
            node._set(k, item, _MISSING)
        self.api.adopt(plan.table, node.write, node.id,
                       self.state.runtime.table_from(replacements) if replacements else None)
        return node, None

    def _new_view(self, template: dict, parent: Node, key: Any, top: Any) -> tuple[Node, Any]:
        """A fresh view holding `template` (mirror-form data); returns (node, proxy)."""
        node = Node(self, parent, key, top)
        values = {}
        for k, v in template.items():
            if type(v) is dict:
                v, values[k] = self._new_view(v, node, k, top)
            else:
                values[k] = v
            node._set(k, v, _MISSING)
        return node, self.api.new_view(node.write, node.id, self.state.runtime.table_from(values))

    def warnings_text(self, warnings: list[tuple[str, str, str]]) -> str:
        """The warnings not given before for their path; each path warns once per kind."""
        fresh = []
        for path, kind, text in warnings:
            if (path, kind) not in self._warned:
                fresh.append(text)
                if not self.strict:
                    self._warned.add((path, kind))
        return "; ".join(fresh)

    # -- callbacks from Lua ----------------------------------------------

    def _lua_warn(self, message: bytes) -> None:
        self._warn(message.decode("utf-8", "replace"))

    def save(self) -> None:
        """Hands the changed top-level keys to the hub's memory (not yet durable)."""
        if not self.dirty:
            return
        data = self.root.data
        changes = {}
        for key in self.dirty:
            value = data.get(key, _MISSING)
            changes[key_text(key).decode()] = (
                None if value is _MISSING else orjson.dumps(_json_value(value)).decode()
            )
        self.dirty.clear()
        self.store.save(self.driver, changes)

    def force_save(self) -> None:
        self.dirty.update(self.root.data)
        self.save()

    def commit(self) -> Any:
        """Saves and makes the saved state durable before returning."""
        try:
            self.save()
            self.store.flush()
        except StoreError as e:
            return None, str(e).encode()
        return True

    def load(self) -> None:
        """(Re)loads the driver's saved snapshot into the root view."""
        root = self.root
        for v in root.data.values():
            if type(v) is Node:
                v.detach()
        root.data.clear()
        root.n_num = root.n_odd = root.max_int = 0
        self.dirty.clear()
        values = {}
        for text_key, doc in self.store.load(self.driver).items():
            key = text_key.encode()
            value = _template_from_json(doc)
            if value is None:
                continue
            if type(value) is dict:
                value, values[key] = self._new_view(value, root, key, key)
            else:
                values[key] = value
            root.data[key] = value
        self.api.fill_root(self.state.runtime.table_from(values))
