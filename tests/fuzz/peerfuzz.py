"""A generated fuzzer of the peer frames after the handshake: valid frames, mutated, from an authenticated peer.

The fuzzer holds validator-0's key (the test network is a devnet with public dev keys, and validator-0 is not
started), completes the real handshake with a target validator, and then sends frames. The valid ones come
from what the target itself sends it (consensus votes and proposals, transaction gossip, block answers),
from consensus messages re-signed by validator-0 (so they get past the signature checks to the rules behind
them), from gossip batches of freshly signed transactions and from block and transaction requests. Each is
sent as is or with mutations: a field of the decoded message changed (to the wrong type, an edge value, bytes of a wrong length)
and re-encoded canonically, possibly re-signed; its bytes flipped, cut or spliced; its channel changed; the
envelope broken. Frame `i` of seed `s` is a pure function of (s, i, the frames received so far).

After each frame the fuzzer sends a WebSocket ping: the target answers it only after its handler has taken
the frame (it reads one message at a time; a consensus message is then stepped by the replica in the same
event-loop turn), so every counted frame was processed. A frame that costs the link
(malformed, or invalid and banned; the test network bans for 1 ms) makes the fuzzer handshake again. The
oracle: the target process stays alive and answers, logs no traceback, and the chain still commits.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import os
import random
import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgpack

from chaincode import FUNCTIONS, QUERIES
from consensus.messages import Message, compute_signing_digest, encode_message, message_from_wire
from core import codec
from core.devkeys import dev_node_key
from core.genesis import Genesis
from node.channels import CHANNEL_BLOCKS, CHANNEL_CONSENSUS, CHANNEL_SYNC, CHANNEL_TX
from node.gossip import encode_tx_batch
from node.sync import GetBlocks, GetTxs, encode_get_blocks, encode_get_txs
from p2p.framing import encode_frame
from p2p.handshake import HandshakeConfig, InitiatorHandshake
from p2p.identity import PeerDirectory, PeerId
from tests.fuzz.apifuzz import ApiInputs

ME = PeerId.validator(0)
CORPUS_PER_CHANNEL = 200
CONFIRM_TIMEOUT_S = 10.0
CHANNELS = [CHANNEL_CONSENSUS, CHANNEL_TX, CHANNEL_SYNC]
EDGE_VALUES: list[Any] = [
    None,
    True,
    0,
    1,
    -1,
    2**32,
    2**63 - 1,
    2**64 - 1,
    -(2**63),
    "",
    "x" * 300,
    b"",
    b"\x00" * 31,
    b"\x00" * 32,
    b"\xff" * 64,
    b"\x00" * 65,
    [],
    [0] * 50,
    {},
    {"a": 1},
]


@dataclass
class Link:
    """One authenticated connection to the target, and what it has sent us."""

    ws: aiohttp.ClientWebSocketResponse
    session: aiohttp.ClientSession
    pongs: asyncio.Queue[None] = field(default_factory=asyncio.Queue)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None


class PeerFuzzer:
    """Plays validator-0 towards one target validator."""

    def __init__(
        self, genesis: Genesis, seed: int, target: PeerId, address: str, ssl_context: Any = None
    ) -> None:
        self.genesis = genesis
        self.seed = seed
        self.target = target
        self.address = address
        self.ssl_context: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self.key = dev_node_key("validator", 0)
        self.config = HandshakeConfig(
            genesis.chain_id, genesis.genesis_hash, PeerDirectory(genesis), ME, self.key
        )
        self.corpus: dict[str, deque[bytes]] = {c: deque(maxlen=CORPUS_PER_CHANNEL) for c in CHANNELS}
        self.height_hint = 1
        self.txs = ApiInputs(
            seed,
            genesis.chain_id,
            {
                "functions": {n: s.to_json() for n, s in FUNCTIONS.items()},
                "queries": {n: s.to_json() for n, s in QUERIES.items()},
            },
        )
        self.link: Link | None = None
        self.reconnects = 0
        self.frames_confirmed = 0
        self.frames_cost_link = 0

    # --- the link --------------------------------------------------------------------------------------------

    async def connect(self) -> Link:
        scheme = "wss" if self.ssl_context is not True else "ws"
        for attempt in range(200):
            session = aiohttp.ClientSession()
            try:
                ws = await session.ws_connect(
                    f"{scheme}://{self.address}/p2p",
                    autoping=False,
                    max_msg_size=64 * 1024 * 1024,
                    ssl=self.ssl_context,
                )
                handshake = InitiatorHandshake(self.config, self.target, os.urandom(32))
                await ws.send_bytes(handshake.start())
                auth = handshake.receive((await ws.receive(timeout=5)).data)
                assert auth is not None
                await ws.send_bytes(auth)
                handshake.receive((await ws.receive(timeout=5)).data)
            except Exception:  # refused (a ban not yet over, busy), or the port is not up yet
                await session.close()
                await asyncio.sleep(0.01 * min(attempt + 1, 20))
                continue
            link = Link(ws, session)
            link.reader = asyncio.ensure_future(self._read(link))
            self.link = link
            return link
        raise AssertionError(f"could not handshake with {self.target} at {self.address}")

    async def _read(self, link: Link) -> None:
        """Answer pings, count pongs, and keep what the target sends as material for new frames."""
        try:
            while True:
                message = await link.ws.receive()
                if message.type is aiohttp.WSMsgType.BINARY:
                    self._remember(message.data)
                elif message.type is aiohttp.WSMsgType.PING:
                    await link.ws.pong(message.data)
                elif message.type is aiohttp.WSMsgType.PONG:
                    link.pongs.put_nowait(None)
                elif message.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    return
        except Exception:
            return
        finally:
            link.closed.set()

    def _remember(self, data: bytes) -> None:
        try:
            channel, payload = codec.decode(data)
        except Exception:
            return
        if channel in self.corpus:
            self.corpus[channel].append(payload)
        if channel == CHANNEL_CONSENSUS:
            try:
                height = codec.decode(payload).get("height")
                if isinstance(height, int):
                    self.height_hint = max(self.height_hint, height)
            except Exception:
                pass

    async def close(self) -> None:
        if self.link is not None:
            await self._drop(self.link)

    async def _drop(self, link: Link) -> None:
        if link.reader is not None:
            link.reader.cancel()
        await link.ws.close()
        await link.session.close()
        self.link = None

    async def send(self, frame: bytes | str) -> bool:
        """Send one frame and wait until the target has handled it; False if it cost the link."""
        link = self.link or await self.connect()
        try:
            if isinstance(frame, str):
                await link.ws.send_str(frame)
            else:
                await link.ws.send_bytes(frame)
            await link.ws.ping()
        except Exception:
            await self._lost(link)
            return False
        pong = asyncio.ensure_future(link.pongs.get())
        closed = asyncio.ensure_future(link.closed.wait())
        done, _ = await asyncio.wait(
            {pong, closed}, timeout=CONFIRM_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        pong.cancel()
        closed.cancel()
        if pong in done:
            self.frames_confirmed += 1
            return True
        if not done:
            raise AssertionError(f"{self.target} handled no frame for {CONFIRM_TIMEOUT_S} s (hung?)")
        await self._lost(link)
        return False

    async def _lost(self, link: Link) -> None:
        self.frames_cost_link += 1
        self.reconnects += 1
        await self._drop(link)

    # --- frames ----------------------------------------------------------------------------------------------

    def make(self, index: int) -> tuple[bytes | str, list[str]]:
        rng = random.Random(f"{self.seed}:peer:{index}")
        channel, payload, steps = self._valid(rng)
        for _ in range(rng.choice((0, 1, 1, 2))):
            payload, step = self._mutate_payload(rng, channel, payload)
            steps.append(step)
        if rng.random() < 0.05:
            return self._mutate_envelope(rng, channel, payload, steps)
        if rng.random() < 0.05:
            channel = rng.choice([*CHANNELS, CHANNEL_BLOCKS])
            steps.append(f"channel={channel}")
        return encode_frame(channel, payload, 64 * 1024 * 1024), steps

    def _valid(self, rng: random.Random) -> tuple[str, bytes, list[str]]:
        choice = rng.random()
        if choice < 0.35 and self.corpus[CHANNEL_CONSENSUS]:
            payload = rng.choice(self.corpus[CHANNEL_CONSENSUS])
            if rng.random() < 0.7:
                return CHANNEL_CONSENSUS, self._resign(payload), ["consensus_resigned"]
            return CHANNEL_CONSENSUS, payload, ["consensus_replayed"]
        if choice < 0.6:
            txs = [self.txs._transaction(rng, self.height_hint).raw for _ in range(rng.choice((1, 1, 5, 50)))]
            return CHANNEL_TX, encode_tx_batch(txs), ["tx_batch"]
        if choice < 0.7 and self.corpus[CHANNEL_TX]:
            return CHANNEL_TX, rng.choice(self.corpus[CHANNEL_TX]), ["tx_replayed"]
        if choice < 0.8:
            first = rng.randint(1, self.height_hint + 5)
            request = GetBlocks(rng.getrandbits(32), first, first + rng.choice((0, 1, 10, 10**6)))
            return CHANNEL_SYNC, encode_get_blocks(request), ["get_blocks"]
        if choice < 0.85:
            ids = tuple(rng.randbytes(32) for _ in range(rng.choice((0, 1, 10, 300))))
            return CHANNEL_SYNC, encode_get_txs(GetTxs(rng.getrandbits(32), ids)), ["get_txs"]
        if self.corpus[CHANNEL_SYNC]:
            return CHANNEL_SYNC, rng.choice(self.corpus[CHANNEL_SYNC]), ["sync_replayed"]
        return CHANNEL_SYNC, encode_get_blocks(GetBlocks(1, 1, 1)), ["get_blocks"]

    def _resign(self, payload: bytes) -> bytes:
        """The same message as validator-0 would sign it (unsigned ones are returned unchanged)."""
        try:
            message = message_from_wire(
                codec.decode(payload),
                params=self.genesis.consensus,
                validator_count=len(self.genesis.validators),
            )
        except Exception:
            return payload
        return encode_message(self._signed(message))

    def _signed(self, message: Message) -> Message:
        unsigned = dataclasses.replace(message, sender=0)  # type: ignore[type-var]
        signature = self.key.sign(compute_signing_digest(self.genesis.chain_id, unsigned))
        return dataclasses.replace(unsigned, signature=signature)  # type: ignore[type-var]

    def _mutate_payload(self, rng: random.Random, channel: str, payload: bytes) -> tuple[bytes, str]:
        choice = rng.random()
        if choice < 0.55:
            try:
                value = msgpack.unpackb(payload, raw=False, strict_map_key=False)
            except Exception:
                return rng.randbytes(len(payload) or 1), "random_bytes"
            name = _mutate_value(rng, value)
            try:
                encoded = codec.encode(value)
            except Exception:  # outside the canonical form (e.g. an integer past 64 bits): plain msgpack
                try:
                    return msgpack.packb(value, use_bin_type=True), f"{name}_noncanonical"
                except (OverflowError, ValueError, TypeError):
                    return rng.randbytes(len(payload) or 1), "random_bytes"
            if channel == CHANNEL_CONSENSUS and rng.random() < 0.5:
                return self._resign(encoded), f"{name}_resigned"
            return encoded, name
        data = bytearray(payload or b"\x00")
        if choice < 0.75:
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            return bytes(data), "bit_flips"
        if choice < 0.9:
            return bytes(data[: rng.randrange(len(data))]), "truncated"
        position = rng.randrange(len(data))
        return bytes(data[:position] + rng.randbytes(rng.randint(1, 32)) + data[position:]), "inserted"

    def _mutate_envelope(
        self, rng: random.Random, channel: str, payload: bytes, steps: list[str]
    ) -> tuple[bytes | str, list[str]]:
        choice = rng.random()
        if choice < 0.25:
            return "not binary", [*steps, "text_message"]
        if choice < 0.5:
            return msgpack.packb([channel, payload], use_bin_type=False), [*steps, "envelope_noncanonical"]
        if choice < 0.75:
            return codec.encode([channel, payload, b"extra"]), [*steps, "envelope_three_items"]
        return codec.encode(["Bad Channel!", payload]), [*steps, "envelope_bad_channel"]


def _mutate_value(rng: random.Random, value: Any) -> str:
    """Change one field somewhere inside a decoded msgpack value in place; returns what was done."""
    slots: list[tuple[Any, Any]] = []
    stack = [value]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, item in items:
            slots.append((node, key))
            if isinstance(item, dict | list):
                stack.append(item)
    if not slots:
        return "scalar_kept"
    parent, key = rng.choice(slots)
    current = parent[key]
    choice = rng.random()
    if isinstance(current, int) and not isinstance(current, bool) and choice < 0.5:
        parent[key] = current + rng.choice((-1, 1, 2**31, -(2**31), 10**6))
        return f"int_{key}"
    if isinstance(current, bytes) and choice < 0.5:
        flipped = bytearray(current or b"\x00")
        flipped[rng.randrange(len(flipped))] ^= 0xFF
        parent[key] = bytes(flipped)
        return f"bytes_{key}"
    if isinstance(parent, dict) and choice < 0.6:
        del parent[key]
        return f"removed_{key}"
    parent[key] = copy.deepcopy(rng.choice(EDGE_VALUES))  # never shared: later mutations edit it
    return f"edge_{key}"
