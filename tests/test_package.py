"""Driver packages and capability files that are wrong in the ways people get them wrong: each is
one `file:line: message`, never a traceback."""

import os
import textwrap
import time

import pytest

from conftest import make_driver
from hubrt.capabilities import Catalogue
from hubrt.inputs import InputError
from hubrt.package import load_package

GOOD = """\
name: p
components:
  - id: main
    capabilities:
      - id: switch
"""

PROFILES = [
    ("preferences: [1, 2]", "profiles/p.yml:6: preference #1 needs a 'name'"),
    ("preferences:\n  - title: no name", "profiles/p.yml:7: preference #1 needs a 'name'"),
    ("categories: 5", "profiles/p.yml:6: 'categories' must be a list like [{name: Light}]"),
    ("  - id: main\n    capabilities: [{id: switch}]", "profiles/p.yml:6: a second component with id 'main'"),
    ("  - id: main\n    capabilities: [{id: switch}]\n  - id: main", "profiles/p.yml:6: a second component"),
]


@pytest.mark.parametrize("extra, message", PROFILES)
def test_bad_profiles_are_named_by_file_and_line(tmp_path, extra, message):
    pkg = make_driver(tmp_path / "pkg", "", profiles={"p": GOOD + extra + "\n"})
    with pytest.raises(InputError) as info:
        load_package(pkg, Catalogue.standard())
    assert str(info.value).startswith(str(pkg / message.split(":")[0])) and message in str(info.value), info.value


CAPABILITIES = [
    ("attributes:\n    a:\n      type: integer\n      minimum: abc", "c.yml:5: capability 'x.y', attribute 'a': "
                                                                     "'minimum' must be a number, got 'abc'"),
    ("attributes:\n    a:\n      type: number\n      maximum: .nan", "c.yml:5: capability 'x.y', attribute 'a': "
                                                                     "'maximum' must be a number"),
    ("attributes:\n    a:\n      type: enum\n      values: [[1], b]", "c.yml:5: capability 'x.y', attribute 'a': "
                                                                      "enum values are strings or numbers, got [1]"),
    ("attributes:\n    a:\n      type: enum\n      values: [{k: 1}]", "c.yml:5: capability 'x.y', attribute 'a': "
                                                                      "enum values are strings or numbers"),
    ("commands:\n    go:\n      - name: speed\n        type: strnig", "c.yml:4: capability 'x.y', command 'go', "
                                                                        "argument 'speed': needs a 'type'"),
]


@pytest.mark.parametrize("definition, message", CAPABILITIES)
def test_bad_capability_files_are_named_by_file_and_line(tmp_path, definition, message):
    pkg = make_driver(tmp_path / "pkg", "", files={"capabilities/c.yml": "x.y:\n  " + definition + "\n"})
    with pytest.raises(InputError) as info:
        load_package(pkg, Catalogue.standard())
    assert message in str(info.value), info.value
    assert str(info.value).startswith(str(pkg / "capabilities" / "c.yml:")), info.value


def test_a_good_package_still_loads(tmp_path):
    pkg = make_driver(tmp_path / "pkg", "", profiles={"p": GOOD + textwrap.dedent("""\
        preferences:
          - name: level
            preferenceType: integer
            definition: {minimum: 1, maximum: 5, default: 3}
          - preferenceId: stse.sensitivity  # a reference to a preference defined elsewhere, as the platform allows
            explicit: true
        """)})
    assert load_package(pkg, Catalogue.standard()).profiles["p"].default_preferences() == {"level": 3}


def test_a_package_is_read_again_when_its_metadata_changes(tmp_path, monkeypatch):
    """Packages are cached (a Lua test installs its package once per test), never past a change to
    config.yml, a profile or a capability file -- also when it is reached by a relative path from
    another folder."""
    standard = Catalogue.standard()
    root = make_driver(tmp_path / "pkg", 'require("st.driver")("p", {}):run()\n', profiles={"p": GOOD})
    old = time.time() - 60
    for path in (root / "config.yml", root / "profiles" / "p.yml"):
        os.utime(path, (old, old))
    first = load_package(root, standard)
    assert load_package(root, standard) is first  # unchanged (and settled): the same reading
    (root / "profiles" / "q.yml").write_text(GOOD.replace("name: p", "name: q"))
    assert set(load_package(root, standard).profiles) == {"p", "q"}
    (root / "capabilities").mkdir()
    (root / "capabilities" / "x.yml").write_text("x.fan:\n  attributes:\n    speed: {type: integer}\n")
    assert "x.fan" in load_package(root, standard).capabilities.definitions
    (root / "config.yml").write_text("name: renamed\npackageKey: p\n")
    assert load_package(root, standard).name == "renamed"
    # a change in the same tick of the clock leaves the time stamp as it was (faked: put back)
    stamp = (root / "config.yml").stat().st_mtime_ns
    (root / "config.yml").write_text("name: again\npackageKey: p\n")
    os.utime(root / "config.yml", ns=(stamp, stamp))
    assert load_package(root, standard).name == "again"
    other = make_driver(tmp_path / "elsewhere" / "pkg", 'require("st.driver")("o", {}):run()\n',
                        key="other", profiles={"p": GOOD})
    monkeypatch.chdir(tmp_path)
    assert load_package("pkg", standard).package_key == "p"
    monkeypatch.chdir(other.parent)
    assert load_package("pkg", standard).package_key == "other"
