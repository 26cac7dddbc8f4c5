"""mDNS service discovery on the real network (`st.mdns.discover` under --network real).

One query (a PTR question for the service type, RFC 6762) goes to 224.0.0.251:5353 from a port of
its own, so responders answer it directly ("legacy unicast": nothing needs the mDNS port, which a
desktop's own responder holds); what answers within the window is read (the DNS wire format is
dnspython's) into the shape the hub answers in: `found` services with their host, port and TXT
entries (as byte lists), and the raw `answers` records.
"""

from __future__ import annotations

import socket
import time

import dns.exception
import dns.message
import dns.rdatatype

GROUP = ("224.0.0.251", 5353)
WINDOW = 1.0  # seconds answers are waited for


def discover(service_type: str, domain: str, window: float = WINDOW) -> dict:
    service = f"{service_type}.{domain}."
    try:
        query = dns.message.make_query(service, dns.rdatatype.PTR)
    except (dns.exception.DNSException, ValueError) as e:
        return {"error": f"{service_type}.{domain} is not a service to ask for: {e}"}
    query.id = 0
    records: list = []
    senders: dict[str, str] = {}  # instance name -> the address its answer came from
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.bind(("", 0))
        sock.sendto(query.to_wire(), GROUP)
        deadline = time.monotonic() + window
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, (address, _) = sock.recvfrom(9000)
            except (TimeoutError, socket.timeout):
                break
            try:
                answer = dns.message.from_wire(data)
            except (dns.exception.DNSException, ValueError):
                continue  # not DNS, or broken: as a hub would, skip it
            for rrset in answer.answer + answer.additional:
                records.append(rrset)
                if rrset.rdtype == dns.rdatatype.PTR and rrset.name.to_text() == service:
                    for ptr in rrset:
                        senders.setdefault(ptr.target.to_text(), address)
    return _shape(service_type, domain, records, senders)


def _name(name) -> str:
    return name.to_text().rstrip(".")


def _shape(service_type: str, domain: str, records: list, senders: dict[str, str]) -> dict:
    srv, txt, addresses, answers = {}, {}, {}, []
    for rrset in records:
        for rdata in rrset:
            name = rrset.name.to_text()
            if rrset.rdtype == dns.rdatatype.SRV:
                srv[name] = (rdata.target.to_text(), rdata.port)
                answers.append({"name": _name(rrset.name), "kind": {"SrvRecord": {"target": _name(rdata.target),
                                                                                  "port": rdata.port}}})
            elif rrset.rdtype == dns.rdatatype.TXT:
                txt[name] = list(rdata.strings)
                answers.append({"name": _name(rrset.name), "kind": {"TxtRecord": {
                    "text": [s.decode("utf-8", "replace") for s in rdata.strings]}}})
            elif rrset.rdtype == dns.rdatatype.A:
                addresses[name] = rdata.address
                answers.append({"name": _name(rrset.name), "kind": {"ARecord": {"ipv4": rdata.address}}})
    found = []
    for instance, sender in senders.items():
        target, port = srv.get(instance, (None, 0))
        suffix = f".{service_type}.{domain}."
        found.append({"service_info": {"name": instance[:-len(suffix)] if instance.endswith(suffix) else instance,
                                       "service_type": service_type, "domain": domain},
                      "host_info": {"address": addresses.get(target, sender), "port": port,
                                    "name": target.rstrip(".") if target else None},
                      "txt": {"text": [list(entry) for entry in txt.get(instance, [])]}})
    unique = list({repr(answer): answer for answer in answers}.values())  # responders repeat records
    return {"found": found, "answers": unique}
