"""The hub's device records: what the hub knows of each device, written through to the store.

A record is hub data, not driver data: id, owning driver, label, profile, network id,
preferences, online state, manufacturer and model, and for a child device its parent
and the key its parent gave it. Drivers' workers keep a copy of their own devices'
records; `stale` names the drivers whose copy must be sent again before their next event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from hubrt.inputs import InputError
from hubrt.store import Store, StoreError


class HubError(InputError):
    """A request the hub refuses (unknown device, capability, driver...); the message says why."""


@dataclass
class Device:
    id: str
    driver: str
    label: str
    profile: str
    network_id: str
    preferences: dict = field(default_factory=dict)
    online: bool = True
    manufacturer: str = ""
    model: str = ""
    parent_id: str | None = None  # a child device's parent (always of the same driver)
    child_key: str | None = None  # the key its parent gave it (parent_assigned_child_key)


class Devices(dict):
    """The hub's devices by id (a dict), found by id or label."""

    def __init__(self) -> None:
        super().__init__()
        self.stale: set[str] = set()  # drivers whose workers have not seen their devices' changes

    def load(self, store: Store) -> None:
        self.clear()
        for record in store.devices():
            try:
                device = Device(**record)
            except TypeError as e:
                raise StoreError(f"{store.path}: a device record does not fit this hubrt ({e}): {record!r}") from None
            self[device.id] = device

    def find(self, ref: str) -> Device:
        """A device by id or label."""
        if ref in self:
            return self[ref]
        matches = [d for d in self.values() if d.label == ref]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise HubError(f"{len(matches)} devices are labelled {ref!r}; use the device id")
        known = ", ".join(repr(d.label) for d in self.values()) or "none"
        raise HubError(f"no device {ref!r} (devices: {known})")

    def of(self, driver: str) -> list[Device]:
        return [d for d in self.values() if d.driver == driver]

    def records(self, driver: str) -> list[dict]:
        """A driver's device records, as its worker gets them."""
        return [asdict(d) for d in self.of(driver)]

    def children(self, device_id: str) -> list[Device]:
        return [d for d in self.values() if d.parent_id == device_id]

    def save(self, store: Store, device: Device) -> None:
        self[device.id] = device
        store.put_device(device.id, asdict(device))
        self.stale.add(device.driver)

    def delete(self, store: Store, device: Device) -> None:
        del self[device.id]
        store.delete_device(device.id)
        self.stale.add(device.driver)
