"""A TLS mismatch between two nodes is named on both sides (issue 18 problem 3), over real sockets.

Before, a validator with TLS and an observer without failed silently: the observer saw "Server disconnected"
at DEBUG, the validator nothing at all. Now the listener tells TLS from plaintext by the first byte and
both ends log what to change, count it (`handshake_failures["tls"]`) and the dialler keeps the reason for
/v1/status and /readyz (`get_link_failures`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from p2p import PeerId, PeerNetwork, TlsConfig
from tests.tlskit import write_self_signed_cert

from .conftest import P2PKit

V0 = PeerId.validator(0)
O0 = PeerId.observer(0)
TIMEOUT_S = 5.0


async def wait_for_failure(network: PeerNetwork, peer: PeerId) -> str:
    """The dialler's reason once its first attempt failed (the attempt runs in the peer layer's task)."""
    deadline = time.monotonic() + TIMEOUT_S
    while peer not in network.get_link_failures():
        assert time.monotonic() < deadline, "no failed link attempt recorded"
        await asyncio.sleep(0.01)
    return network.get_link_failures()[peer]


def tls_config(directory: Path) -> TlsConfig:
    cert, key = write_self_signed_cert(directory)
    return TlsConfig(cert, key, ca_file=cert)


async def start(
    kit: P2PKit, server_tls: TlsConfig | None, client_tls: TlsConfig | None
) -> tuple[PeerNetwork, PeerNetwork]:
    validator = kit.network(V0, tls=server_tls)
    observer = kit.network(O0, tls=client_tls)
    await validator.listen()
    observer.set_peer_address(V0, f"127.0.0.1:{validator.bound_port}")
    await validator.start()
    await observer.start()
    return validator, observer


def server_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("validator-0: refused")]


async def test_plaintext_dialler_of_a_tls_port(
    kit: P2PKit, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="carbonchain.p2p")
    validator, observer = await start(kit, tls_config(tmp_path), None)
    reason = await wait_for_failure(observer, V0)
    assert "requires TLS on its peer port and we dial without it" in reason and "tls_ca" in reason
    assert any(
        f"cannot link to {V0}: " in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )
    (line,) = server_lines(caplog)[:1]
    assert "plaintext connection on our TLS peer port: that node dials without TLS" in line
    assert validator.handshake_failures["tls"] >= 1 and observer.handshake_failures["tls"] >= 1
    assert not observer.connected_peers()


async def test_tls_dialler_of_a_plaintext_port(
    kit: P2PKit, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="carbonchain.p2p")
    validator, observer = await start(kit, None, tls_config(tmp_path))
    reason = await wait_for_failure(observer, V0)
    assert reason.startswith("TLS handshake with 127.0.0.1:") and "does it listen without TLS?" in reason
    (line,) = server_lines(caplog)[:1]
    assert "a TLS connection on our plaintext peer port: that node dials with TLS" in line
    assert validator.handshake_failures["tls"] >= 1


async def test_certificates_of_different_authorities(
    kit: P2PKit, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="carbonchain.p2p")
    _, observer = await start(kit, tls_config(tmp_path / "a"), tls_config(tmp_path / "b"))
    reason = await wait_for_failure(observer, V0)
    assert "TLS: the certificate of 127.0.0.1:" in reason and "is not accepted" in reason
    deadline = time.monotonic() + TIMEOUT_S
    while not server_lines(caplog):
        assert time.monotonic() < deadline, "the validator logged nothing"
        await asyncio.sleep(0.01)
    assert "does not accept our certificate" in server_lines(caplog)[0]


async def test_a_refused_handshake_is_named_on_both_sides(
    kit: P2PKit, caplog: pytest.LogCaptureFixture
) -> None:
    """The observer runs another genesis: the validator names the address and the reason, the observer too."""
    caplog.set_level(logging.INFO, logger="carbonchain.p2p")
    from .conftest import make_genesis

    validator = kit.network(V0)
    observer = kit.network(O0, genesis=make_genesis(genesis_time="2026-02-01T00:00:00Z"))
    await validator.listen()
    observer.set_peer_address(V0, f"127.0.0.1:{validator.bound_port}")
    await validator.start()
    await observer.start()
    reason = await wait_for_failure(observer, V0)
    assert "genesis-hash" in reason
    deadline = time.monotonic() + TIMEOUT_S
    while not server_lines(caplog):
        assert time.monotonic() < deadline, "the validator logged nothing"
        await asyncio.sleep(0.01)
    assert "from 127.0.0.1: handshake refused (genesis-hash)" in server_lines(caplog)[0]
    assert validator.handshake_failures["genesis-hash"] >= 1
