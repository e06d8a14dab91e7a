"""Local networks take their ports outside the kernel's ephemeral range, where outgoing connections could
grab one between our check and the node's bind."""

from __future__ import annotations

from tools.bench.network import PORT_SPAN, _ephemeral_ports, find_free_port_base


def test_port_bases_avoid_the_ephemeral_range() -> None:
    low, high = _ephemeral_ports()
    for _ in range(50):
        base = find_free_port_base(5)
        assert base + PORT_SPAN <= low or base > high, (base, low, high)
