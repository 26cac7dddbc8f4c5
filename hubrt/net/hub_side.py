"""The hub's side of its drivers' networks: the simulated LAN, what the LAN has for each driver's
sockets until the hub delivers it, and the hub's own address (what `environment_info` holds)."""

from __future__ import annotations

from typing import Any, Callable

from hubrt.devices import HubError
from hubrt.net.real import is_ipv4, local_ipv4
from hubrt.net.simulated import HUB_IP, SimulatedLan


class HubNetwork:
    def __init__(self, kind: str, post: Callable[[str, list[dict]], None],
                 defer: Callable[[Callable[[], None]], None]) -> None:
        """`kind`: "simulated" or "real". `post(driver, events)` delivers what a driver's sockets got as
        a dispatch; `defer(action)` runs an action after the current dispatch."""
        self.lan = SimulatedLan(self._arrived)  # the outside world: it outlives hub restarts
        self.environment = {"hub_ipv4": HUB_IP if kind == "simulated" else local_ipv4(), "hub_ipv6": None}
        self._post, self._defer = post, defer
        self.kind = kind
        self._pending: dict[str, list[dict]] = {}  # driver -> what its sockets got, not yet delivered

    def _arrived(self, driver: str, event: dict) -> None:
        if not self._pending:
            self._defer(self._deliver)
        self._pending.setdefault(driver, []).append(event)

    def _deliver(self) -> None:
        pending, self._pending = self._pending, {}
        for driver, events in pending.items():
            self._post(driver, events)

    def tell(self, worker: Any) -> None:
        """Sends a driver's worker the LAN's directory when it changed since the worker last heard
        (before a dispatch, as device records are sent)."""
        if self.kind == "simulated" and worker.lan_version != self.lan.version:
            worker.lan_version = self.lan.version
            worker.notify({"op": "lan", "directory": self.lan.directory()})

    def connected(self, driver: str, m: dict) -> None:
        """A connection the worker made itself (from the directory): the peer gets it now. Should the
        LAN have changed meanwhile, the socket hears of it as a failure."""
        answer = self.call(driver, {**m, "call": "connect"})
        if not answer.get("ok"):
            self.lan.deliver(driver, {"sock": m["sock"], "error": answer.get("error") or "connection refused"})

    def call(self, driver: str, m: dict) -> dict:
        """A driver's socket call on the simulated LAN; what the peer answered at once travels with it."""
        answer = self.lan.call(driver, m)
        events = self._pending.pop(driver, None)
        if events:
            answer["events"] = events
        return answer

    def set_hub_ip(self, ip: str) -> None:
        if not is_ipv4(ip):
            raise HubError(f"the hub's address must be an IPv4 address like 192.168.1.3, got {ip!r}")
        self.environment["hub_ipv4"] = ip
        self.lan.set_hub_ip(ip)
