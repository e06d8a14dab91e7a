"""Shared fixtures for the peer-layer tests: a devnet genesis, networks on ephemeral ports, raw clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from core.devkeys import dev_admin_key, dev_node_key
from core.genesis import Genesis, parse_genesis
from core.keys import SigningKey
from p2p import PeerId, PeerLimits, PeerNetwork, TlsConfig
from p2p.handshake import HandshakeConfig, InitiatorHandshake
from p2p.identity import PeerDirectory

CHAIN_ID = "test-devnet"
# Small timeouts keep the suite fast; events, not sleeps, drive every wait.
FAST_LIMITS = PeerLimits(
    handshake_timeout_ms=1_000,
    reconnect_base_ms=20,
    reconnect_max_ms=200,
    close_grace_ms=1_000,
)


def make_genesis_document(validators: int = 4, observers: int = 1, **overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "chain_id": CHAIN_ID,
        "genesis_time": "2026-01-01T00:00:00Z",
        "validators": [
            {
                "org": "mee",
                "node_key": dev_node_key("validator", i).public_key.hex(),
                "peer_address": f"127.0.0.1:{7100 + i}",
                "api_address": f"127.0.0.1:{7200 + i}",
            }
            for i in range(validators)
        ],
        "observers": [
            {
                "org": "mee",
                "node_key": dev_node_key("observer", j).public_key.hex(),
                "api_address": f"127.0.0.1:{7300 + j}",
            }
            for j in range(observers)
        ],
        "organisations": [
            {
                "id": "mee",
                "name": "Ministry",
                "role": "regulator",
                "admin_keys": [dev_admin_key("mee").public_key.hex()],
            }
        ],
    }
    document.update(overrides)
    return document


def make_genesis(validators: int = 4, observers: int = 1, **overrides: Any) -> Genesis:
    return parse_genesis(make_genesis_document(validators, observers, **overrides))


def node_key_of(peer: PeerId) -> SigningKey:
    return dev_node_key(peer.role.value, peer.index)


class P2PKit:
    """Builds networks and raw clients, and closes everything at the end of a test."""

    def __init__(self) -> None:
        self.genesis = make_genesis()
        self.networks: list[PeerNetwork] = []
        self.sessions: list[aiohttp.ClientSession] = []

    def network(
        self,
        peer: PeerId,
        *,
        limits: PeerLimits = FAST_LIMITS,
        genesis: Genesis | None = None,
        listen_port: int | None = 0,
        tls: TlsConfig | None = None,
    ) -> PeerNetwork:
        port = None if not peer.is_validator else listen_port
        network = PeerNetwork(
            genesis or self.genesis, node_key_of(peer), peer, "127.0.0.1", port, tls=tls, limits=limits
        )
        self.networks.append(network)
        return network

    async def start_all(self, networks: list[PeerNetwork]) -> None:
        """Listen everywhere first, tell everyone the real ports, then start dialling."""
        for network in networks:
            await network.listen()
        addresses = {n.self_id: f"127.0.0.1:{n.bound_port}" for n in networks if n.bound_port is not None}
        for network in networks:
            for peer, address in addresses.items():
                network.set_peer_address(peer, address)
        for network in networks:
            await network.start()

    def session(self) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession()
        self.sessions.append(session)
        return session

    async def raw_connect(self, port: int) -> aiohttp.ClientWebSocketResponse:
        """A WebSocket to the peer port that has not started any handshake."""
        return await self.session().ws_connect(f"http://127.0.0.1:{port}/p2p", max_msg_size=64 * 1024 * 1024)

    async def raw_handshake(
        self,
        port: int,
        local: PeerId,
        remote: PeerId,
        *,
        genesis: Genesis | None = None,
        key: SigningKey | None = None,
    ) -> aiohttp.ClientWebSocketResponse:
        """Drive the initiator handshake by hand; returns the authenticated socket or raises HandshakeRefused."""
        ws = await self.raw_connect(port)
        await run_initiator(ws, handshake_config(local, genesis or self.genesis, key), remote)
        return ws

    async def close(self) -> None:
        for network in self.networks:
            await network.close()
        for session in self.sessions:
            await session.close()


def handshake_config(local: PeerId, genesis: Genesis, key: SigningKey | None = None) -> HandshakeConfig:
    """A handshake config; with a foreign `key` the directory is patched so the config itself is consistent."""
    directory = PeerDirectory(genesis)
    signing_key = key or node_key_of(local)
    if key is not None:
        directory._keys[local] = key.public_key
    return HandshakeConfig(genesis.chain_id, genesis.genesis_hash, directory, local, signing_key)


async def receive_binary(ws: aiohttp.ClientWebSocketResponse) -> bytes:
    message = await ws.receive(timeout=5)
    if message.type is not aiohttp.WSMsgType.BINARY:
        raise ConnectionResetError(f"got {message.type.name} instead of a binary message")
    data: bytes = message.data
    return data


async def run_initiator(
    ws: aiohttp.ClientWebSocketResponse, config: HandshakeConfig, remote: PeerId
) -> bytes:
    """Run the initiator side over `ws`; returns the auth message that was sent."""
    handshake = InitiatorHandshake(config, remote, b"\x01" * 32)
    await ws.send_bytes(handshake.start())
    auth = handshake.receive(await receive_binary(ws))
    assert auth is not None
    await ws.send_bytes(auth)
    handshake.receive(await receive_binary(ws))
    return auth


@pytest.fixture
async def kit() -> AsyncIterator[P2PKit]:
    toolkit = P2PKit()
    try:
        yield toolkit
    finally:
        await toolkit.close()
