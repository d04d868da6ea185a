"""Warnings about a router nobody can reach: ``client_cidrs`` left at a documentation range.

The shipped stack files carry ``203.0.113.0/24`` as a placeholder. That range (and
``192.0.2.0/24``, ``198.51.100.0/24``) is reserved for documentation (RFC 5737,
https://www.rfc-editor.org/rfc/rfc5737): no client calls from it, so a stack deployed with it
runs its GPU nodes (about $110/hour for ``prod-tp16``) behind a router whose security group
admits nobody, and the first ``curl`` just times out. The offline plan and ``pulumi up``'s
preview show the warning before anything is created; it is a warning, not a refusal, so the
shipped stacks still plan as they are.

Pure code: no Pulumi import.
"""

from __future__ import annotations

import ipaddress

from infra.spec import StackSpec, qualified

DOCUMENTATION_NETS: tuple[ipaddress.IPv4Network, ...] = (
    ipaddress.IPv4Network("192.0.2.0/24"),
    ipaddress.IPv4Network("198.51.100.0/24"),
    ipaddress.IPv4Network("203.0.113.0/24"),
)
"""RFC 5737 TEST-NET-1, -2 and -3."""


def documentation_cidrs(cidrs: list[str]) -> list[str]:
    """The entries of ``cidrs`` that lie wholly inside an RFC 5737 documentation range.

    Args:
        cidrs: CIDR strings as ``client_cidrs`` holds them (already validated as networks).

    Returns:
        those entries, in their given order; IPv6 entries and anything else are left out.
    """
    out: list[str] = []
    for c in cidrs:
        net = ipaddress.ip_network(c, strict=False)
        if isinstance(net, ipaddress.IPv4Network) and any(net.subnet_of(d) for d in DOCUMENTATION_NETS):
            out.append(c)
    return out


def reachability_warnings(spec: StackSpec) -> list[str]:
    """One warning line per problem that leaves the router unreachable to its clients.

    Args:
        spec: the parsed stack spec.

    Returns:
        warning lines naming ``sglang-cluster:client_cidrs``; empty when at least one entry
        lies outside the documentation ranges.
    """
    doc = documentation_cidrs(spec.client_cidrs)
    if not doc or len(doc) < len(spec.client_cidrs):
        return []
    return [
        f"{qualified('client_cidrs')}: {', '.join(doc)} is a documentation range (RFC 5737) "
        "that no client calls from: the router would admit nobody while the GPU nodes bill. "
        "Set the range you call the router from (your address: curl -s https://checkip.amazonaws.com)"
    ]
