"""Property tests: for random Lua values, a datastore write is accepted exactly when the
contract says (spec/datastore.md section 3), and after save + reload in a fresh Lua
state the value read back is the contract's transformation of what was written."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import PLAIN_LUA, LuaHub
from hubrt.engine import LuaFailure


class Func:
    """A Lua function value."""


@dataclass(frozen=True)
class Table:
    items: tuple  # ((key, value), ...), keys distinct as Lua keys


INT_RANGE = {"luajit": 2**53, "5.3": 2**63}


def lua_values(engine: str):
    limit = INT_RANGE[engine]
    strings = st.one_of(st.text(max_size=5).map(str.encode), st.binary(max_size=4))
    numbers = st.one_of(
        st.integers(-limit + 1, limit - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e300, float("nan"), float("inf"), -float("inf")]),
    )
    keys = st.one_of(
        strings,
        st.integers(-3, 6),
        st.sampled_from([1.5, -0.25, float("inf")]),
        st.booleans(),
    )
    scalars = st.one_of(st.booleans(), numbers, strings, st.just(Func()))

    def tables(children):
        return st.one_of(
            st.lists(children, max_size=5).map(lambda vs: Table(tuple(enumerate(vs, 1)))),
            st.dictionaries(keys, children, max_size=5).map(lambda d: Table(tuple(d.items()))),
        )

    return st.recursive(scalars, tables, max_leaves=12)


# -- rendering a value as Lua source -------------------------------------------


def lua_literal(v, engine: str) -> str:
    if isinstance(v, Func):
        return "function() end"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return "math.mininteger" if v == -(2**63) else f"({v})"
    if isinstance(v, float):
        if math.isnan(v):
            return "(0/0)"
        if math.isinf(v):
            return "math.huge" if v > 0 else "(-math.huge)"
        return f"({v!r})"
    if isinstance(v, bytes):
        return '"' + "".join(f"\\{b}" for b in v) + '"'
    return "{" + ", ".join(f"[{lua_literal(k, engine)}] = {lua_literal(x, engine)}" for k, x in v.items) + "}"


# -- the contract as a model -----------------------------------------------------


def is_utf8(b: bytes) -> bool:
    try:
        b.decode()
    except UnicodeDecodeError:
        return False
    return True


def key_text(k) -> bytes:
    if isinstance(k, bytes):
        return k
    if isinstance(k, int):
        return str(k).encode()
    if math.isinf(k):
        return b"inf" if k > 0 else b"-inf"
    return b"%.14g" % k


def is_sequence(keys) -> bool:
    ints = [k for k in keys if isinstance(k, int) and not isinstance(k, bool)]
    return bool(keys) and len(ints) == len(keys) and min(ints) >= 1 and max(ints) == len(ints)


def accepted(v) -> bool:
    if isinstance(v, Func):
        return False
    if isinstance(v, bytes):
        return is_utf8(v)
    if not isinstance(v, Table):
        return True
    keys = [k for k, _ in v.items]
    if any(isinstance(k, bool) or (isinstance(k, bytes) and not is_utf8(k)) for k in keys):
        return False
    if not is_sequence(keys):
        texts = [key_text(k) for k in keys]
        if len(set(texts)) != len(texts):
            return False
    return all(accepted(x) for _, x in v.items)


def as_read(v, engine: str):
    """What Lua hands back for v before any restart (lupa's view of Lua numbers)."""
    if isinstance(v, float) and engine == "luajit" and v.is_integer() and abs(v) < 2**63:
        return int(v)
    if isinstance(v, Table):
        return {as_read(k, engine): as_read(x, engine) for k, x in v.items}
    return v


def after_restart(v, engine: str):
    """The contract's transformation: what JSON gives back after a restart."""
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if not isinstance(v, Table):
        return as_read(v, engine)
    keys = [k for k, _ in v.items]
    out = {}
    for k, x in v.items:
        value = after_restart(x, engine)
        if value is not None:
            out[k if is_sequence(keys) else key_text(k)] = value
    return out


def same(a, b) -> bool:
    """Equality of read-back values: NaN equals NaN, and 1 is not 1.0."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(same(a[k], b[k]) for k in a))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


# -- reading a datastore value back into Python ----------------------------------

READ_BACK = PLAIN_LUA + "return plain(ds.a), plain(ds.holder and ds.holder.b)\n"


def to_python(v, lupa):
    if lupa.lua_type(v) == "table":
        return {to_python(k, lupa): to_python(x, lupa) for k, x in v.items()}
    return v


def read_back(hub: LuaHub):
    a, b = hub.run(READ_BACK)
    return to_python(a, hub.lua.lupa), to_python(b, hub.lua.lupa)


@pytest.mark.parametrize("engine_name", ["luajit", "5.3"])
@settings(max_examples=int(os.environ.get("HUBRT_FUZZ_EXAMPLES", "120")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_write_accepted_exactly_when_the_contract_says_and_reloads_transformed(engine_name, data):
    value = data.draw(lua_values(engine_name), label="value")
    literal = lua_literal(value, engine_name)
    with tempfile.TemporaryDirectory() as tmp:
        hub = LuaHub(Path(tmp), engine_name)
        hub.run('local ds = require("datastore").init(); ds.holder = {}')
        outcomes = []
        for target in ("ds.a", "ds.holder.b"):
            try:
                hub.run(f'local ds = require("datastore").init()\n{target} = {literal}\n')
                outcomes.append(True)
            except LuaFailure as e:
                assert "driver.lua:2: " in e.message, e.message
                assert any(s in e.message for s in ("must be JSON encodable", "not valid UTF-8",
                                                    "would both be saved")), e.message
                outcomes.append(False)
        expected = accepted(value)
        assert outcomes == [expected, expected], literal
        a, b = read_back(hub)
        if not expected:
            assert a is None and b is None, "a rejected write leaves the datastore unchanged"
            hub.close()
            return
        assert same(a, as_read(value, engine_name)) and same(b, a), (literal, a)
        hub.run('require("datastore").init():save()')
        hub.restart()
        a, b = read_back(hub)
        want = after_restart(value, engine_name)
        assert same(a, want), (literal, a, want)
        assert same(b, want), (literal, b, want)
        hub.close()
