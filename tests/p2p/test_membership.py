"""The peer layer follows the validator set the chain decides: a validator that joins is dialled and
admitted, a removed one loses its links and is refused, a replaced key is refused and the new one admitted."""

from __future__ import annotations

import asyncio

import pytest

from core.devkeys import dev_node_key
from core.keys import SigningKey
from p2p import PeerId, PeerNetwork
from p2p.errors import HandshakeRefused, RefusalCode
from p2p.identity import PeerDirectory, ValidatorEntry, compute_dial_targets
from tests.p2p.conftest import FAST_LIMITS, P2PKit, make_genesis, node_key_of

TIMEOUT_S = 10.0
V = [PeerId.validator(i) for i in range(5)]


def entries(
    networks: dict[PeerId, PeerNetwork], keys: dict[PeerId, bytes] | None = None
) -> list[ValidatorEntry]:
    """The validators as the chain would list them, at the ports the test networks really listen on."""
    keys = keys or {}
    return [
        ValidatorEntry(peer.index, keys.get(peer, node_key_of(peer).public_key), f"127.0.0.1:{n.bound_port}")
        for peer, n in sorted(networks.items())
    ]


def watch_disconnects(network: PeerNetwork, peer: PeerId) -> asyncio.Event:
    """An event set when `network` loses its link to `peer`."""
    gone = asyncio.Event()
    network.on_disconnect(lambda lost: gone.set() if lost == peer else None)
    return gone


async def wait_all(events: list[asyncio.Event]) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        for event in events:
            await event.wait()


def test_the_directory_reports_what_an_update_changes() -> None:
    genesis = make_genesis()
    directory = PeerDirectory(genesis)
    assert directory.validators == tuple(V[:4])
    new_key = SigningKey.from_insecure_label("rotated").public_key
    change = directory.update_validators(
        [
            ValidatorEntry(0, node_key_of(V[0]).public_key, "127.0.0.1:7100"),
            ValidatorEntry(2, new_key, "127.0.0.1:7102"),
            ValidatorEntry(3, node_key_of(V[3]).public_key, "10.0.0.3:7103"),
            ValidatorEntry(4, node_key_of(V[4]).public_key, "127.0.0.1:7104"),
        ]
    )
    assert change.added == (V[2], V[4])
    assert change.dropped == (V[1], V[2])
    assert change.moved == (V[3],)
    assert directory.validators == (V[0], V[2], V[3], V[4])
    assert directory.get_key(V[1]) is None and directory.get_key(V[2]) == new_key
    assert directory.get_peer_by_key(new_key) == V[2]
    assert directory.get_peer_by_key(node_key_of(V[2]).public_key) is None
    assert directory.get_address(V[3]) == "10.0.0.3:7103"
    assert compute_dial_targets(directory, V[0]) == [V[2], V[3], V[4]]
    assert list(directory.observers) == [PeerId.observer(0)]  # observers stay those of the genesis
    with pytest.raises(ValueError):
        directory.update_validators([ValidatorEntry(1, new_key, "a:1"), ValidatorEntry(1, new_key, "a:2")])


async def test_a_joining_validator_is_dialled_and_a_removed_one_refused(kit: P2PKit) -> None:
    genesis = kit.genesis
    networks = {peer: kit.network(peer) for peer in V[:4]}
    await kit.start_all(list(networks.values()))
    for peer, network in networks.items():
        await network.wait_connected([p for p in V[:4] if p != peer], TIMEOUT_S)
    # validator-4 is not in the genesis: it starts from the set the chain says is (about to be) in force
    joining = [*entries(networks), ValidatorEntry(4, node_key_of(V[4]).public_key, "127.0.0.1:0")]
    joiner = PeerNetwork(
        genesis, node_key_of(V[4]), V[4], "127.0.0.1", 0, limits=FAST_LIMITS, validators=joining
    )
    await joiner.listen()
    everyone = {**networks, V[4]: joiner}
    joiner.directory.update_validators(entries(everyone))
    kit.networks.append(joiner)
    await joiner.start()
    for network in networks.values():
        network.update_validators(entries(everyone))
    await joiner.wait_connected(V[:4], TIMEOUT_S)  # the lower numbers dial it
    for network in networks.values():
        await network.wait_connected([V[4]], TIMEOUT_S)

    # validator-1 is removed: the others drop it and refuse it from then on
    remaining = {peer: n for peer, n in everyone.items() if peer != V[1]}
    gone = [watch_disconnects(network, V[1]) for network in remaining.values()]
    for network in remaining.values():
        network.update_validators(entries(remaining))
    await wait_all(gone)
    assert not any(network.is_connected(V[1]) for network in remaining.values())
    assert networks[V[1]].connected_peers() == []
    port = networks[V[2]].bound_port
    assert port is not None
    with pytest.raises(HandshakeRefused) as info:
        await kit.raw_handshake(port, V[1], V[2])
    assert info.value.code is RefusalCode.UNKNOWN_PEER
    assert networks[V[0]].connected_peers() == [V[2], V[3], V[4]]


async def test_a_replaced_key_is_refused_and_the_new_one_admitted(kit: P2PKit) -> None:
    networks = {peer: kit.network(peer) for peer in V[:4]}
    await kit.start_all(list(networks.values()))
    await networks[V[0]].wait_connected(V[1:4], TIMEOUT_S)
    new_key = dev_node_key("validator", 42)
    gone = [watch_disconnects(networks[peer], V[2]) for peer in (V[0], V[1], V[3])]
    for peer in (V[0], V[1], V[3]):
        networks[peer].update_validators(entries(networks, {V[2]: new_key.public_key}))
    await wait_all(gone)
    port = networks[V[3]].bound_port
    assert port is not None
    with pytest.raises(HandshakeRefused) as info:  # the old key no longer proves validator-2
        await kit.raw_handshake(port, V[2], V[3])
    assert info.value.code is RefusalCode.BAD_SIGNATURE
    # the new one does: once the refused attempt's slot is released (and validator-2's own process, still
    # dialling with its old key, leaves one free), as a real peer retries after `busy`
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while True:
        try:
            ws = await kit.raw_handshake(port, V[2], V[3], key=new_key)
            break
        except HandshakeRefused as refused:
            if refused.code is not RefusalCode.BUSY or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
    await networks[V[3]].wait_connected([V[2]], TIMEOUT_S)
    await ws.close()
