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
from typing import Any, Callable, Iterable

import orjson

from hubrt.engine import LuaState, lua_functions
from hubrt.store import Store, StoreError

UNSUPPORTED = "Data store keys and values must be JSON encodable: {}"
# Stands for "<tostring(x)> is of unsupported type <type(x)>" in a message that
# Lua completes: lupa converts some Lua values (coroutines) into Python
# objects that no longer say what they were, so only Lua can describe them.
DESCRIBE_IN_LUA = "\x00"
METATABLE = "datastore table values should be simple and not include metatable functionality"
ROOT_NAME = "datastore"
# How deep tables may nest below a top-level key. JSON encoders and decoders stop somewhere
# (orjson at 255 levels), so a deeper table could be assigned but never saved or reloaded;
# it is refused at the assignment instead, well below any such limit.
MAX_DEPTH = 100
_INT64 = 2**63

_MISSING = object()
_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*\Z")
_INTEGER_TEXT = re.compile(rb"-?[0-9]+\Z")


class Rejected(Exception):
    """An assignment the datastore refuses; the message is shown to the driver.

    `subject` is b"k" or b"v" when Lua must describe the assigned key or value
    in place of DESCRIBE_IN_LUA.
    """

    def __init__(self, message: str, subject: bytes | None = None) -> None:
        super().__init__(message)
        self.subject = subject


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


def number_key(key: float, where: str) -> Any:
    """A float key as the datastore keeps it: as an integer when it is one (Lua 5.3 makes
    t[1.0] the same key as t[1]); refused when it cannot be saved as itself -- NaN, or a number
    whose saved text (Lua's tostring, 14 digits) would read back as another number."""
    if key != key:
        raise Rejected(f"a key of {where} is NaN, which no table can hold as a key")
    if key.is_integer() and -_INT64 <= key < _INT64:
        return int(key)
    text = key_text(key)
    if float(text) != key:
        raise Rejected(f'{where}: the key {key!r} would be saved as "{text.decode()}", which reads back as '
                       "another number; use a string key (or an integer)")
    return key


def _too_deep(at: str) -> Rejected:
    return Rejected(f"{at}: tables nested more than {MAX_DEPTH} levels deep cannot be saved (JSON has a "
                    "nesting limit); flatten the data")


def _height(node: Node) -> int:
    """Levels of tables from this view down (1 for a table of scalars)."""
    return 1 + max((_height(child) for child in node.children.values()), default=0)


def _clash(path: str, number: Any) -> Rejected:
    text = key_text(number).decode()
    return Rejected(f'{path}: keys {text} and "{text}" would both be saved as "{text}"')


def _not_utf8(what: str) -> Rejected:
    return Rejected(f"{what} is a string that is not valid UTF-8; base64-encode binary data before storing it")


def _sequence_warning(path: str) -> tuple[str, str, str]:
    return (path, "keys", f"{path}: number keys of a table that is not a 1..n sequence "
                          "come back as string keys after a restart")


def _is_utf8(s: bytes) -> bool:
    if s.isascii():
        return True
    try:
        s.decode()
    except UnicodeDecodeError:
        return False
    return True


def _is_plain_scalar(v: Any) -> bool:
    """True for the values that need no further look: ints, booleans, ASCII strings, finite floats."""
    tv = type(v)
    return tv is int or tv is bool or (tv is bytes and v.isascii()) or (tv is float and v - v == 0.0)


def _fast_writer(node: Node) -> tuple[Callable[[Any, Any], Any], Callable[[bool], None]]:
    """The function a view's __newindex calls for each assignment, and its switch.

    This is the hot path of the whole design (one call per write from Lua), so
    it is a closure rather than a method, and it takes only the commonest
    case -- an ASCII string key, a scalar value or nil, a table without number
    keys -- handing everything else to `Node.write_checked`. The value itself lives in
    the view's Lua backing table; Python only validates and marks the
    top-level key dirty. Reserved method names are refused on the Lua side.
    The switch turns the shortcut off while the table has number keys (a
    closure variable is cheaper to test than an attribute).
    """
    dirty, top, children, checked = node.ds.dirty, node.top, node.children, node.write_checked
    fast = True

    def write(k: Any, v: Any) -> Any:
        # _is_plain_scalar(v), inlined: a function call here costs 10% of the write rate
        tv = type(v)
        if fast and type(k) is bytes and k.isascii():
            if tv is int or tv is bool or (tv is bytes and v.isascii()) or (tv is float and v - v == 0.0):
                dirty[k if top is None else top] = None
                return None
            if v is None:
                children.pop(k, None)
                dirty[k if top is None else top] = None
                return None
        return checked(k, v)

    def set_fast(on: bool) -> None:
        nonlocal fast
        fast = on

    return write, set_fast


Shape = tuple[int, int, int, int]  # number keys, odd number keys, string keys, largest positive int key


def _shape_of(keys: Iterable[Any]) -> Shape:
    n_num = n_odd = n_str = max_int = 0
    for k in keys:
        if type(k) is bytes:
            n_str += 1
        else:
            n_num += 1
            if type(k) is int and k > 0:
                max_int = max(max_int, k)
            else:
                n_odd += 1
    return n_num, n_odd, n_str, max_int


def _is_sequence(shape: Shape) -> bool:
    n_num, n_odd, n_str, max_int = shape
    return n_num > 0 and n_odd == 0 and n_str == 0 and n_num == max_int


class Node:
    """The Python side of one datastore view: where it sits, its key shape, its validator.

    The key shape (counts of number and string keys, largest integer key) is
    tracked only while the table has number keys: it decides whether the
    table is saved as a JSON array or as an object with string keys.
    """

    __slots__ = ("ds", "id", "backing", "parent", "key", "top", "depth", "children", "n_num", "n_odd", "n_str",
                 "max_int",
                 "write", "_set_fast", "__weakref__")

    def __init__(self, ds: Datastore, parent: Node | None, key: Any, top: Any, shape: Shape = (0, 0, 0, 0)) -> None:
        self.ds = ds
        self.id = next(ds.ids)
        self.backing: Any = None  # the view's Lua backing table, set once the view exists
        self.parent = parent
        self.key = key
        self.top = top  # the top-level key this table lives under (None for the datastore itself)
        self.depth = 0 if parent is None else parent.depth + 1
        # key -> Node of the table stored there. Every table assignment goes through
        # write_checked, which keeps this right; a key that now holds a scalar may
        # keep an entry until it is deleted, which is harmless (only read for tables).
        self.children: dict[Any, Node] = {}
        if parent is not None:
            parent.children[key] = self
        self.write, self._set_fast = _fast_writer(self)
        self.set_shape(shape)
        ds.nodes[self.id] = self

    def set_shape(self, shape: Shape) -> None:
        self.n_num, self.n_odd, self.n_str, self.max_int = shape
        self._set_fast(self.n_num == 0)

    def write_checked(self, k: Any, v: Any) -> Any:
        """Validates fully, then tells Lua: nothing (ok), or (ok, warning, replacement), or (False, error)."""
        try:
            return self._write_checked(k, v)
        except Rejected as e:
            return False, str(e).encode(), e.subject

    def _write_checked(self, k: Any, v: Any) -> Any:
        ds = self.ds
        path = self.path()
        key = self._check_key(k, path)
        at = path + _show_key(key)
        warnings: list[tuple[str, str, str]] = []
        plan = None
        if v is not None:
            if ds.lua_type(v) == "table":
                plan = ds.plan_table(v, at, warnings, self.depth + 1)
            else:
                ds.check_scalar(v, at, warnings, None)
        shape = self._shape_after(key, v is None, path, warnings)
        message = ds.warnings_text(warnings)
        if message and ds.strict:
            raise Rejected(message + " (strict mode turns this warning into an error)")
        # Validated: from here on nothing refuses the write.
        replacement = ds.build(plan, self, key) if plan is not None else None
        self.set_shape(shape)
        ds.dirty[self.top if self.parent is not None else key] = None
        if message or replacement is not None:
            return True, (message.encode() if message else None), replacement
        return None

    def _check_key(self, k: Any, path: str) -> Any:
        tk = type(k)
        if tk is bytes:
            if not _is_utf8(k):
                raise _not_utf8(f"a key of {path}")
            return k
        if tk is int:
            return k
        if tk is float:
            return number_key(k, path)
        raise Rejected(UNSUPPORTED.format(DESCRIBE_IN_LUA) + f" (a key of {path}; JSON keys are strings)", b"k")

    def _shape_after(self, key: Any, deleting: bool, path: str, warnings: list) -> Shape:
        """The key shape after this write; refuses JSON key clashes, warns about number keys."""
        shape: Shape = (self.n_num, self.n_odd, self.n_str, self.max_int)
        is_number = type(key) is not bytes
        if not is_number and not self.n_num:
            return shape  # string keys only: nothing to track
        backing, rawget = self.backing, self.ds.rawget
        exists = rawget(backing, key) is not None
        if not deleting and not exists:
            twin = key_text(key) if is_number else _number_of_key_text(key)
            if twin is not None and rawget(backing, twin) is not None:
                raise _clash(path, key if is_number else twin)
        change = (-1 if exists else 0) if deleting else (0 if exists else 1)
        if change:
            shape = self._shape_changed(shape, key, change)
        if self.parent is None:
            if is_number and not deleting:
                warnings.append((path, "keys", f"{path}: number keys of the datastore itself come back as "
                                               "string keys after a restart"))
        elif shape[0] and not _is_sequence(shape):
            warnings.append(_sequence_warning(path))
        return shape

    def _shape_changed(self, shape: Shape, key: Any, change: int) -> Shape:
        n_num, n_odd, n_str, max_int = shape
        if n_num == 0:  # the first number key: start tracking
            n_str = sum(1 for k in self.backing.keys() if type(k) is bytes)
        if type(key) is bytes:
            return n_num, n_odd, n_str + change, max_int
        n_num += change
        if not (type(key) is int and key > 0):
            return n_num, n_odd + change, n_str, max_int
        if change > 0:
            return n_num, n_odd, n_str, max(max_int, key)
        if key != max_int:
            return n_num, n_odd, n_str, max_int
        if n_odd == 0 and n_num == key - 1:  # the other integer keys are exactly 1..key-1
            return n_num, n_odd, n_str, key - 1
        rest = (k for k in self.backing.keys() if type(k) is int and 0 < k != key)
        return n_num, n_odd, n_str, max(rest, default=0)

    def path(self) -> str:
        parts = []
        node = self
        while node.parent is not None:
            parts.append(_show_key(node.key))
            node = node.parent
        return ROOT_NAME + "".join(reversed(parts))

    def json_value(self, k: Any, v: Any) -> Any:
        """The JSON form of the value `v` stored at key `k` of this table."""
        tv = type(v)
        if tv is bytes:
            return v.decode()
        if tv is int or tv is float or tv is bool:
            return v  # orjson writes NaN and infinity as null, as the hub's JSON does
        return self.children[k].to_json()

    def to_json(self) -> Any:
        """The JSON document of this table, as the hub saves it. (A save walks every table under
        a changed top-level key, so json_value is inlined here for the commonest case.)"""
        if self.n_num and _is_sequence((self.n_num, self.n_odd, self.n_str, self.max_int)):
            values = dict(self.backing.items())
            return [self.json_value(i, values[i]) for i in range(1, self.n_num + 1)]
        doc = {}
        children = self.children
        for k, v in self.backing.items():
            tv = type(v)
            if tv is bytes:
                v = v.decode()
            elif tv is not int and tv is not float and tv is not bool:
                v = children[k].to_json()
            doc[k.decode() if type(k) is bytes else key_text(k).decode()] = v
        return doc

    def template(self) -> dict:
        """A deep copy of the contents, in the form `Datastore.new_view` takes."""
        lua_type = self.ds.lua_type
        return {k: (self.children[k].template() if lua_type(v) == "table" else v)
                for k, v in self.backing.items()}


def _template_from_json(doc: Any) -> Any:
    """A loaded JSON value in the form Lua gets it (strings as bytes, arrays keyed 1..n)."""
    if type(doc) is str:
        return doc.encode()
    if type(doc) is dict:
        return {k.encode(): _template_from_json(v) for k, v in doc.items() if v is not None}
    if type(doc) is list:
        return {i: _template_from_json(v) for i, v in enumerate(doc, 1) if v is not None}
    return doc


class _Plan:
    """A validated table value, not yet turned into a view."""

    __slots__ = ("table", "children", "shape", "view")

    def __init__(self, table: Any, children: dict, shape: Shape, view: Node | None = None) -> None:
        self.table = table
        self.children = children  # key -> _Plan for the values that are tables
        self.shape = shape
        self.view = view  # a view already in the datastore: stored as a copy


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
        self.dirty: dict = {}  # top-level keys changed since the last save (a dict keeps their order)
        self.lua_type = state.lupa.lua_type
        # t[k] on a Lua table from Python is wrong inside a task (lupa 2.8, engine.py): a call is right
        self.rawget = state.runtime.eval(b"rawget")
        self._table_from = state.runtime.table_from
        self.api = lua_functions(state.host_chunk("datastore.lua")(state.table(
            warn=self._lua_warn,
            save=self.save_now,
            force_save=self.force_save,
            is_dirty=lambda: bool(self.dirty),
            commit=self.commit,
            load=self.load,
            where=state.helpers.where,
        )))
        self.root = Node(self, None, None, None)
        _, self.root.backing = self.api.make_root(self.root.write, self.root.id)
        self.load()
        state.preload("datastore", state.runtime.eval(b"function(m) return function() return m end end")(
            self.api.module))

    # -- validation helpers used by Node -------------------------------------

    def check_scalar(self, v: Any, at: str, warnings: list, owner: tuple | None) -> None:
        """Checks a value that is not a table; `owner` is (table, key) when it is nested."""
        tv = type(v)
        if tv is bytes:
            if not _is_utf8(v):
                raise _not_utf8(at)
        elif tv is float:
            if v != v or math.isinf(v):
                warnings.append((at, "nan", f"{at} = {_show_value(v)} comes back as nil after a restart "
                                            "(JSON has no NaN or infinity)"))
        elif tv is not int and tv is not bool:
            if owner is None:
                raise Rejected(UNSUPPORTED.format(DESCRIBE_IN_LUA) + f" (at {at})", b"v")
            raise Rejected(UNSUPPORTED.format(self.api.describe_value(*owner).decode("utf-8", "replace"))
                           + f" (at {at})")

    def plan_table(self, t: Any, at: str, warnings: list, depth: int, seen: dict | None = None) -> _Plan:
        """Validates a table value that would sit `depth` levels below the datastore, changing nothing."""
        kind, ident = self.api.inspect(t)
        if kind == 2:
            raise Rejected(f"{METATABLE} (at {at})")
        if kind == 1:
            view = self.nodes[ident]
            if depth + _height(view) - 1 > MAX_DEPTH:
                raise _too_deep(at)
            return _Plan(t, {}, (0, 0, 0, 0), view=view)
        if depth > MAX_DEPTH:
            raise _too_deep(at)
        seen = {} if seen is None else seen
        if ident in seen:
            first = seen[ident]
            if at.startswith(first + ".") or at.startswith(first + "["):
                raise Rejected(f"{at}: the table contains itself (a cycle), which cannot be saved as JSON")
            raise Rejected(f"{at}: the same table also appears at {first}; the datastore saves trees, "
                           "so store a copy instead")
        seen[ident] = at
        children: dict = {}
        keys = []
        for k, v in t.items():
            tk = type(k)
            if tk is bytes:
                if not (k.isascii() or _is_utf8(k)):
                    raise _not_utf8(f"a key of {at}")
            elif tk is float:
                number_key(k, at)
            elif tk is not int:
                raise Rejected(UNSUPPORTED.format(self.api.describe_bad_key(t).decode("utf-8", "replace"))
                               + f" (a key of {at}; JSON keys are strings)")
            keys.append(k)
            if _is_plain_scalar(v):
                continue
            child_at = at + _show_key(k)  # only built for values that may warn or fail
            if self.lua_type(v) == "table":
                children[k] = self.plan_table(v, child_at, warnings, depth + 1, seen)
            else:
                self.check_scalar(v, child_at, warnings, (t, k))
        shape = _shape_of(keys)
        if shape[0] and not _is_sequence(shape):
            present = set(keys)
            for k in keys:
                if type(k) is not bytes and key_text(k) in present:
                    raise _clash(at, k)
            warnings.append(_sequence_warning(at))
        return _Plan(t, children, shape)

    def build(self, plan: _Plan, parent: Node, key: Any) -> Any:
        """Turns a validated plan into views; returns the value to store instead, if any."""
        top = parent.top if parent.parent is not None else key
        if plan.view is not None:
            return self.new_view(plan.view.template(), parent, key, top)
        node = Node(self, parent, key, top, plan.shape)
        replacements = {}
        for k, child in plan.children.items():
            replacement = self.build(child, node, k)
            if replacement is not None:
                replacements[k] = replacement
        node.backing = self.api.adopt(plan.table, node.write, node.id,
                                      self._table_from(replacements) if replacements else None)
        return None

    def new_view(self, template: dict, parent: Node, key: Any, top: Any) -> Any:
        """A fresh view holding `template`; returns the view."""
        node = Node(self, parent, key, top, _shape_of(template))
        values = {k: (self.new_view(v, node, k, top) if type(v) is dict else v) for k, v in template.items()}
        node.backing = self._table_from(values)
        return self.api.new_view(node.write, node.id, node.backing)

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
        root, rawget = self.root, self.rawget
        backing = root.backing
        changes = {}
        for key in self.dirty:
            value = rawget(backing, key)
            changes[key_text(key).decode()] = (
                None if value is None else orjson.dumps(root.json_value(key, value)).decode())
        self.dirty.clear()
        self.store.save(self.driver, changes)

    def save_now(self) -> None:
        """`ds:save()`: saved, and in the hub's hands before it returns (a crash right after loses
        nothing), where the save after each batch of dispatches travels with the batch's other news."""
        self.save()
        self.store.hand_over()

    def force_save(self) -> None:
        self.dirty.update(dict.fromkeys(self.root.backing.keys()))
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
        """(Re)loads the driver's saved snapshot into the datastore table."""
        root = self.root
        root.set_shape((0, 0, 0, 0))
        self.dirty.clear()
        values = {}
        for text_key, doc in self.store.load(self.driver).items():
            key = text_key.encode()
            value = _template_from_json(doc)
            if type(value) is dict:
                value = self.new_view(value, root, key, key)
            if value is not None:
                values[key] = value
        self.api.fill_root(self._table_from(values))
