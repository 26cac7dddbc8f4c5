"""The networks a driver's sockets reach.

A driver's cosock sockets (lua/cosock/socket.lua) ask the hub to connect,
send and close; what comes back (bytes, a closed connection, a datagram) is
delivered to the driver's worker as a `net` dispatch, which wakes the task
waiting on that socket. `simulated.SimulatedLan` is the hub's LAN in memory,
on the hub's clock: hosts and the peers on them (HTTP servers, SSDP and mDNS
answers, UPnP eventing), faults on demand, and a record of what drivers sent;
`hub_side.HubNetwork` is what the hub keeps of it. `real.RealNetwork` is a
worker's own sockets (`--network real`); `fake_bridge` a device to find there.
"""
