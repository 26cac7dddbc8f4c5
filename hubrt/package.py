"""Driver packages as authors already have them: config.yml, profiles/*.yml, src/init.lua.

Loading checks everything a hub would refuse at install time and reports it
as a PackageError whose message names the file (and line, for YAML) and what
to change, never a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubrt.capabilities import Catalogue
from hubrt.inputs import InputError, at, read_yaml
from hubrt.paths import settled


class PackageError(InputError):
    """A driver package cannot be installed; the message names the file."""


@dataclass
class Profile:
    name: str
    components: dict[str, list[str]]  # component id -> capability ids, in order
    categories: list[str] = field(default_factory=list)
    preferences: list[dict] = field(default_factory=list)

    def default_preferences(self) -> dict[str, Any]:
        """What a new device's preferences hold: each default its definition gives (where the
        platform reads it, `definition: {default: ...}`), as a hub fills them in."""
        return {p["name"]: p["definition"]["default"] for p in self.preferences
                if "name" in p and isinstance(p.get("definition"), dict) and "default" in p["definition"]}

    def as_lua(self) -> dict:
        return {
            "name": self.name,
            "components": {
                cid: {"id": cid, "capabilities": [{"id": cap, "version": 1} for cap in caps]}
                for cid, caps in self.components.items()
            },
        }


@dataclass
class DriverPackage:
    path: Path
    name: str
    package_key: str
    description: str
    profiles: dict[str, Profile]
    capabilities: Catalogue
    warnings: list[str] = field(default_factory=list)  # shown when the package is installed
    permissions: frozenset[str] = frozenset()  # config.yml's `permissions` (lan, discovery...)

    @property
    def src(self) -> Path:
        return self.path / "src"


def _fingerprint(folder: str) -> tuple | None:
    """What a package's metadata was read from: file names and modification times (None where the
    folder cannot be read)."""
    found, subfolders = [], []
    try:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name == "config.yml" and e.is_file():
                    found.append((e.path, e.stat().st_mtime_ns))
                elif e.name in ("profiles", "capabilities") and e.is_dir():
                    subfolders.append(e.path)
        for sub in subfolders:
            with os.scandir(sub) as entries:
                found += [(e.path, e.stat().st_mtime_ns) for e in entries if e.is_file()]
    except OSError:  # unreadable, or changed while it was read
        return None
    return tuple(sorted(found))


_cache: dict[tuple, DriverPackage] = {}


def load_package(path: Path | str, standard: Catalogue, strict: bool = False) -> DriverPackage:
    """Reads and checks a driver package (cached until its files change, once their time stamps have
    `settled`: tests install one package often). A capability that no definition describes is a
    warning (the driver may use it unchecked), or an error when `strict`."""
    folder = os.path.abspath(path)
    fingerprint = _fingerprint(folder)
    key = (folder, id(standard), strict, fingerprint)
    if key in _cache:
        return _cache[key]
    package = _read_package(Path(path), standard, strict)
    if fingerprint is not None and all(settled(mtime) for _, mtime in fingerprint):
        _cache[key] = package
    return package


def _read_package(path: Path, standard: Catalogue, strict: bool) -> DriverPackage:
    if not path.is_dir():
        raise PackageError(f"{path}: not a driver package (no such directory)")
    config_path = path / "config.yml"
    if not config_path.is_file():
        raise PackageError(f"{path}: not a driver package: config.yml is missing")
    if not (path / "src" / "init.lua").is_file():
        raise PackageError(f"{path}: not a driver package: src/init.lua is missing")
    config = read_yaml(config_path)
    if not isinstance(config, dict):
        raise PackageError(f"{config_path}: expected a mapping with name and packageKey")
    for key in ("name", "packageKey"):
        if not isinstance(config.get(key), str) or not config[key].strip():
            raise PackageError(f"{at(config_path, config, key)}: '{key}' is missing or not a string")
    catalogue = standard.extended(path / "capabilities")
    profiles = {}
    unknown: dict[str, str] = {}  # capability id -> where a profile first names it
    warnings: list[str] = []
    for profile_path in sorted((path / "profiles").glob("*.y*ml")):
        profile = _load_profile(profile_path, catalogue, unknown, warnings)
        if profile.name in profiles:
            raise PackageError(f"{profile_path}: a second profile named {profile.name!r}")
        profiles[profile.name] = profile
    if not profiles:
        raise PackageError(f"{path}: no device profiles in profiles/*.yml")
    warnings += [f"{where}: unknown capability {cap!r}{catalogue.suggestion(cap)}; the driver can use it, "
                 "unchecked (add its definition to capabilities/ or --capabilities DIR to have it checked)"
                 for cap, where in unknown.items()]
    if strict and warnings:
        raise PackageError(warnings[0].replace("; the driver can use it, unchecked", "") + " (--strict)")
    permissions = config.get("permissions") or {}
    if not isinstance(permissions, dict):
        raise PackageError(f"{at(config_path, config, 'permissions')}: 'permissions' must be a mapping, "
                           "e.g. permissions: {lan: {}, discovery: {}}")
    return DriverPackage(path, config["name"], config["packageKey"], str(config.get("description", "")),
                         profiles, catalogue.with_permissive(list(unknown)), warnings,
                         frozenset(str(k) for k in permissions))


def _load_profile(path: Path, catalogue: Catalogue, unknown: dict[str, str], warnings: list[str]) -> Profile:
    doc = read_yaml(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise PackageError(f"{at(path, doc, 'name')}: a profile needs a 'name'")
    components = doc.get("components")
    if not isinstance(components, list) or not components:
        raise PackageError(f"{at(path, doc, 'components')}: profile {doc['name']!r} needs a non-empty "
                           "'components' list")
    result: dict[str, list[str]] = {}
    for i, component in enumerate(components):
        if not isinstance(component, dict) or not isinstance(component.get("id"), str):
            raise PackageError(f"{at(path, doc, 'components')}: component #{i + 1} needs an 'id'")
        where = at(path, component, "id")
        if component["id"] in result:
            raise PackageError(f"{where}: a second component with id {component['id']!r}")
        caps = component.get("capabilities")
        if not isinstance(caps, list) or not caps:
            raise PackageError(f"{where}: component {component['id']!r} needs a 'capabilities' list")
        ids = []
        for cap in caps:
            cap_id = cap.get("id") if isinstance(cap, dict) else None
            where = at(path, cap, "id") if isinstance(cap, dict) else at(path, component, "capabilities")
            if not isinstance(cap_id, str):
                raise PackageError(f"{where}: component {component['id']!r}: each capability needs an 'id'")
            if cap_id not in catalogue:
                unknown.setdefault(cap_id, where)
            ids.append(cap_id)
        _check_categories(path, component)
        result[component["id"]] = ids
    preferences = doc.get("preferences") or []
    if not isinstance(preferences, list):
        raise PackageError(f"{at(path, doc, 'preferences')}: 'preferences' must be a list")
    for i, pref in enumerate(preferences, 1):
        # defined here (name, title, preferenceType, definition...) or a reference to one (preferenceId)
        if not isinstance(pref, dict) or not any(isinstance(pref.get(k), str) for k in ("name", "preferenceId")):
            where = at(path, pref) if isinstance(pref, dict) else at(path, doc, "preferences")
            raise PackageError(f"{where}: preference #{i} needs a 'name' (a mapping with name, preferenceType, "
                               "definition...) or a 'preferenceId'")
        if "definition" in pref and not isinstance(pref["definition"], dict):
            raise PackageError(f"{at(path, pref, 'definition')}: preference {pref.get('name')!r}: 'definition' "
                               "must be a mapping, e.g. {minimum: 1, maximum: 100, default: 50}")
        if "default" in pref:  # (hubrt once read it there)
            warnings.append(f"{at(path, pref, 'default')}: preference {pref.get('name')!r}: a default goes in "
                            "its definition ({definition: {default: ...}}), where the platform reads it; this "
                            "one is ignored, as a hub ignores it")
    return Profile(doc["name"], result, _check_categories(path, doc), preferences)


def _check_categories(path: Path, owner: dict) -> list:
    """Categories as the platform writes them: a list of mappings with a 'name'."""
    categories = owner.get("categories") or []
    if not isinstance(categories, list) or not all(
            isinstance(c, dict) and isinstance(c.get("name"), str) for c in categories):
        raise PackageError(f"{at(path, owner, 'categories')}: 'categories' must be a list like "
                           "[{name: Light}], got " + repr(categories))
    return categories
