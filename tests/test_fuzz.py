"""Bad-input fuzzing (hypothesis): datastore mutation sequences against a model of the contract,
driver package files and scenario files. Never a Python traceback: every failure is an
InputError (or a Lua error) whose message names the input."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DIMMER, PLAIN_LUA, LuaHub, make_driver
from hubrt.capabilities import Catalogue
from hubrt.hub import Hub
from hubrt.inputs import InputError
from hubrt.package import load_package
from hubrt.scenario import AssertionFailed, Runner, ScenarioError, load_scenario

# `make test` runs 60 examples a test; HUBRT_FUZZ_EXAMPLES=2000 makes a campaign (docs/reliability.md).
SETTINGS = settings(max_examples=int(os.environ.get("HUBRT_FUZZ_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# -- datastore mutation sequences ------------------------------------------------

KEYS = ["a", "b", "c"]
json_values = st.recursive(
    st.one_of(st.integers(-1000, 1000), st.booleans(), st.text("xyz é", max_size=4)),
    lambda children: st.one_of(st.lists(children, min_size=1, max_size=3),
                               st.dictionaries(st.sampled_from(["p", "q", "r"]), children, max_size=3)),
    max_leaves=6)

operations = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(KEYS), json_values),
    st.tuples(st.just("delete"), st.sampled_from(KEYS)),
    st.tuples(st.just("nested"), st.sampled_from(KEYS), st.sampled_from(["p", "q"]), json_values),
    st.tuples(st.just("save")),
    st.tuples(st.just("commit")),
    st.tuples(st.just("restart"), st.sampled_from(["driver_crash", "graceful", "power_loss"])),
)


def lua(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return '"' + "".join(f"\\{b}" for b in v.encode()) + '"'
    if isinstance(v, list):
        return "{" + ", ".join(lua(x) for x in v) + "}"
    return "{" + ", ".join(f"[{lua(k)}] = {lua(x)}" for k, x in v.items()) + "}"


READ = PLAIN_LUA + "return plain(ds)\n"


def as_python(value, lua_type):
    if lua_type(value) == "table":
        items = {(k.decode() if isinstance(k, bytes) else k): as_python(v, lua_type) for k, v in value.items()}
        if items and all(isinstance(k, int) for k in items):
            return [items[i] for i in range(1, len(items) + 1)]
        return items
    return value.decode() if isinstance(value, bytes) else value


@pytest.mark.parametrize("engine_name", ["luajit", "5.3"])
@SETTINGS
@given(ops=st.lists(operations, max_size=12))
def test_mutation_sequences_match_the_model(engine_name, ops):
    live: dict = {}
    saved: dict = {}
    flushed: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        hub = LuaHub(Path(tmp), engine_name)
        for op in ops:
            if op[0] == "set":
                hub.run(f'require("datastore").init().{op[1]} = {lua(op[2])}')
                live[op[1]] = copy.deepcopy(op[2])
            elif op[0] == "delete":
                hub.run(f'require("datastore").init().{op[1]} = nil')
                live.pop(op[1], None)
            elif op[0] == "nested":
                _, key, sub, value = op
                if isinstance(live.get(key), dict):
                    hub.run(f'require("datastore").init().{key}.{sub} = {lua(value)}')
                    live[key][sub] = copy.deepcopy(value)
            elif op[0] == "save":
                hub.run('require("datastore").init():save()')
                saved = copy.deepcopy(live)
            elif op[0] == "commit":
                hub.run('assert(require("datastore").init():commit())')
                saved = flushed = copy.deepcopy(live)
            elif op[1] == "driver_crash":
                hub.crash_driver()
                live = copy.deepcopy(saved)
            elif op[1] == "graceful":
                hub.restart()
                saved = flushed = copy.deepcopy(live)
            else:
                hub.lose_power()
                live = copy.deepcopy(flushed)
                saved = copy.deepcopy(flushed)
            (value,) = hub.run(READ)
            got = as_python(value, hub.lua.lupa.lua_type)
            assert got == live, (op, got, live)
        hub.close()


# -- driver package files ------------------------------------------------------------

yaml_docs = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(["name", "packageKey", "components", "id",
                                                                "capabilities", "preferences", "x"]),
                                               children, max_size=4)),
    max_leaves=10)
texts = st.one_of(yaml_docs.map(lambda d: yaml.safe_dump(d)), st.text(max_size=60))


@SETTINGS
@given(config=texts, profile=texts)
def test_package_files_fail_with_a_message_naming_the_file(tmp_path_factory, config, profile):
    root = make_driver(tmp_path_factory.mktemp("pkg"), "require('st.driver')('x', {}):run()\n",
                       profiles={"p": profile})
    (root / "config.yml").write_text(config)
    try:
        package = load_package(root, Catalogue.standard())
    except InputError as e:
        assert str(root) in str(e), str(e)
        return
    assert package.profiles  # accepted: then it is complete


@SETTINGS
@given(profile=yaml_docs)
def test_profiles_that_look_almost_right(tmp_path_factory, profile):
    doc = {"name": "p", "components": [{"id": "main", "capabilities": [{"id": "switch"}]}]}
    if isinstance(profile, dict):
        doc.update(profile)
    root = make_driver(tmp_path_factory.mktemp("pkg"), "", profiles={"p": yaml.safe_dump(doc)})
    try:
        load_package(root, Catalogue.standard())
    except InputError as e:
        assert "p.yml" in str(e) or "profiles" in str(e), str(e)


# -- scenario files ----------------------------------------------------------------------

verbs = st.sampled_from(["add_device", "command", "advance", "restart", "print", "assert", "remove_device",
                         "update_device", "discover", "flush", "wait", "add_devise", "bogus"])
step_values = st.one_of(yaml_docs, st.fixed_dictionaries(
    {}, optional={"profile": st.sampled_from(["dimmer", "switch", "nope"]),
                  "label": st.sampled_from(["Lamp", "Other"]), "device": st.sampled_from(["Lamp", "Nobody"]),
                  "capability": st.sampled_from(["switch", "switchLevel", "lock"]),
                  "command": st.sampled_from(["on", "off", "setLevel", "x"]),
                  "args": st.one_of(st.lists(st.integers(-5, 200), max_size=2), yaml_docs),
                  "kind": st.sampled_from(["graceful", "power_loss", "reboot"]),
                  "seconds": st.one_of(st.integers(-1, 100), st.text(max_size=3)),
                  "equals": yaml_docs, "state": st.sampled_from(["switch.switch", "x"]),
                  "what": st.sampled_from(["datastore", "devices", "state", "nothing"])}))
scenarios = st.lists(st.dictionaries(verbs, step_values, min_size=1, max_size=1), max_size=6)


@SETTINGS
@given(steps=st.one_of(scenarios.map(yaml.safe_dump), st.text(max_size=80)))
def test_scenario_files_never_raise_anything_but_a_named_error(tmp_path_factory, steps):
    tmp = tmp_path_factory.mktemp("scn")
    path = tmp / "scenario.yml"
    path.write_text(steps)
    try:
        parsed = load_scenario(path)
    except ScenarioError as e:
        assert str(path) in str(e), str(e)
        return
    hub = Hub(tmp / "state", on_log=lambda r: None)
    try:
        hub.install(DIMMER)
        Runner(hub, out=lambda line: None).run(parsed)
    except (ScenarioError, AssertionFailed) as e:
        assert str(path) in str(e), str(e)
    finally:
        hub.shutdown()
