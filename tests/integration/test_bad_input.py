"""Bad input against a real running node: peer-port garbage and impostors, and invalid API requests.

Each gets a clear rejection; the node keeps running and commits nothing from them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import random
from pathlib import Path

import aiohttp
import pytest

from client import CarbonClient
from core import codec
from core.devkeys import dev_admin_key
from core.keys import SigningKey
from core.tx import TxBody, sign_transaction, transaction_to_json
from p2p.handshake import PROTOCOL_VERSION, Hello, Transcript, decode_hello, encode_auth, encode_hello
from p2p.identity import PeerId, PeerRole
from tests.integration.cluster import Cluster, running_cluster, wait_until

pytestmark = pytest.mark.timeout(180)


def _body(cluster: Cluster, **changes: object) -> TxBody:
    key = dev_admin_key("bank")
    fields: dict[str, object] = {
        "chain_id": cluster.genesis.chain_id,
        "chaincode": "carbon",
        "function": "deposit_cash",
        "args": {"org": "ent-a", "amount_fen": 5, "bank_ref": "BAD-INPUT"},
        "sender_org": "bank",
        "sender_key": key.public_key,
        "nonce": int.from_bytes(os.urandom(8), "big"),
        "valid_until": 100,
    }
    fields.update(changes)
    return TxBody(**fields)  # type: ignore[arg-type]


async def _post(session: aiohttp.ClientSession, url: str, data: bytes, content_type: str) -> tuple[int, dict]:
    async with session.post(url + "/v1/txs", data=data, headers={"Content-Type": content_type}) as response:
        return response.status, await response.json(content_type=None)


async def test_api_rejects_bad_requests_clearly_and_commits_nothing(tmp_path: Path) -> None:
    with running_cluster(tmp_path, observers=0) as cluster:
        url = cluster.api_url("validator-1")
        async with aiohttp.ClientSession() as session:
            await wait_until(lambda: _is_up(cluster, session, url), timeout_s=30, what="the API")
            good = sign_transaction(_body(cluster), dev_admin_key("bank"))
            tampered = bytearray(good.raw)
            tampered[-1] ^= 0x01  # last byte of the signature
            wrong_chain = sign_transaction(_body(cluster, chain_id="other-devnet"), dev_admin_key("bank"))
            stranger = SigningKey.generate()
            unknown_sender = sign_transaction(_body(cluster, sender_key=stranger.public_key), stranger)
            cases = [
                (b"{not json", "application/json", 400, "malformed"),
                (
                    json.dumps({"body": {"nonce": "7"}, "signature": "00"}).encode(),
                    "application/json",
                    400,
                    "malformed",
                ),
                (json.dumps(42).encode(), "application/json", 400, "malformed"),
                (b"\xc1\xc1\xc1", "application/msgpack", 400, "malformed"),
                (b"x" * (2 * 1024 * 1024), "application/json", 413, "too_large"),
                (bytes(tampered), "application/msgpack", 400, "bad_signature"),
                (wrong_chain.raw, "application/msgpack", 400, "wrong_chain"),
                (unknown_sender.raw, "application/msgpack", 400, "unknown_sender"),
                (
                    json.dumps(transaction_to_json(good) | {"extra": 1}).encode(),
                    "application/json",
                    400,
                    "malformed",
                ),
            ]
            for data, content_type, status, code in cases:
                got_status, document = await _post(session, url, data, content_type)
                assert (got_status, document["error"]) == (status, code), (data[:40], document)
                assert document["message"]
            # a batch answers per transaction, in order; one bad item does not spoil the others
            for data, content_type, codes in [
                (json.dumps([1, 2, 3]).encode(), "application/json", ["malformed"] * 3),
                (
                    codec.encode([bytes(tampered), wrong_chain.raw, b"\xc1", unknown_sender.raw]),
                    "application/msgpack",
                    ["bad_signature", "wrong_chain", "malformed", "unknown_sender"],
                ),
            ]:
                got_status, document = await _post(session, url, data, content_type)
                assert got_status == 200, document
                assert [r["error"] for r in document["results"]] == codes
                assert all(r["status"] == "rejected" and r["message"] for r in document["results"])
            for path, status in [
                ("/v1/txs/zz", 400),
                ("/v1/blocks/-1", 400),
                ("/v1/blocks/99999999999999999999999", 400),
                ("/v1/carbon/no_such_query", 404),
                ("/v1/carbon/holdings?org=" + "x" * 2000, 400),
                ("/v1/state/" + "k" * 600 + "/history", 400),
                ("/v1/events?tx=nothex", 400),
            ]:
                async with session.get(url + path) as response:
                    assert response.status == status, path
                    assert "error" in await response.json(content_type=None)
        async with CarbonClient(url) as client:
            # The node still works, and nothing above was committed: the only deposit is this one.
            assert (await client.submit_and_wait(good, timeout_s=20)).is_ok
            replay_status, replay = await _post_raw(url, good.raw)
            assert (replay_status, replay["error"]) == (409, "replay")
            holdings = await client.query("holdings", org="ent-a")
            assert holdings["cash_fen"]["available"] == 5
            # and a batch of good ones (one repeated, which is idempotent) is accepted and commits whole
            key = dev_admin_key("bank")
            batch = [
                sign_transaction(
                    _body(cluster, args={"org": "ent-a", "amount_fen": 1, "bank_ref": f"B-{i}"}), key
                )
                for i in range(3)
            ]
            submissions = await client.submit_many([*batch, batch[0]])
            assert [s.accepted for s in submissions] == [True] * 4
            statuses = await client.wait_for_commits([tx.tx_id.hex() for tx in batch], timeout_s=30)
            assert all(status.is_ok for status in statuses.values())
            holdings = await client.query("holdings", org="ent-a")
            assert holdings["cash_fen"]["available"] == 8


async def test_peer_port_survives_garbage_and_refuses_impostors(tmp_path: Path) -> None:
    with running_cluster(tmp_path, observers=0) as cluster:
        host, port = cluster.peer_address(3)
        async with aiohttp.ClientSession() as session:
            url = cluster.api_url("validator-3")
            await wait_until(lambda: _is_up(cluster, session, url), timeout_s=30, what="the API")
            # Raw TCP garbage, then an HTTP request that is not a WebSocket upgrade.
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(os.urandom(4096))
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), timeout=10) is not None  # closed by the node
            writer.close()
            async with session.get(cluster.peer_url(3, "http"), ssl=cluster.peer_ssl()) as response:
                assert response.status >= 400
            # A WebSocket that sends garbage instead of a hello is closed.
            async with session.ws_connect(cluster.peer_url(3), ssl=cluster.peer_ssl()) as socket:
                await socket.send_bytes(b"\x00garbage")
                message = await asyncio.wait_for(socket.receive(), timeout=10)
                assert message.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.BINARY,
                )
            # An impostor claiming validator-0's identity with another key is refused.
            refusal = await _impostor_handshake(cluster, 3)
            assert refusal["type"] == "refuse", refusal
        async with CarbonClient(cluster.api_url("validator-3")) as client:
            signer = await client.signer(org="bank", key=dev_admin_key("bank"))
            status = await client.submit_and_wait(
                signer.build("deposit_cash", {"org": "ent-b", "amount_fen": 1, "bank_ref": "after-garbage"}),
                timeout_s=20,
            )
            assert status.is_ok

            async def all_linked() -> bool:
                return bool((await client.status())["peers"] == 3)

            # Links still come up after all that (one may still be in its reconnect backoff from startup).
            await wait_until(all_linked, timeout_s=15, what="validator-3 linked to all 3 peers")


async def _impostor_handshake(cluster: Cluster, index: int) -> dict:
    """Claim validator-0's identity with another key and sign the transcript with it."""
    impostor = SigningKey.generate()
    nonce = os.urandom(32)
    hello = Hello(
        PROTOCOL_VERSION,
        cluster.genesis.chain_id,
        cluster.genesis.genesis_hash,
        PeerRole.VALIDATOR,
        0,
        nonce,
        b"",
    )
    url = cluster.peer_url(index)
    async with aiohttp.ClientSession() as session, session.ws_connect(url, ssl=cluster.peer_ssl()) as socket:
        await socket.send_bytes(encode_hello(hello, ack=False))
        ack = decode_hello((await asyncio.wait_for(socket.receive(), timeout=10)).data, ack=True)
        transcript = Transcript(
            chain_id=cluster.genesis.chain_id,
            genesis_hash=cluster.genesis.genesis_hash,
            initiator=PeerId.validator(0),
            initiator_key=impostor.public_key,
            initiator_nonce=nonce,
            responder=ack.peer,
            responder_key=cluster.genesis.validators[index].node_key_bytes,
            responder_nonce=ack.nonce,
        )
        await socket.send_bytes(encode_auth(impostor.sign(transcript.compute_signed_digest("initiator"))))
        answer = await asyncio.wait_for(socket.receive(), timeout=10)
        if answer.type is not aiohttp.WSMsgType.BINARY:
            return {"type": "refuse", "closed": True}
        decoded: dict = codec.decode(answer.data)
        return decoded


async def _raw_status(host: str, port: int, path: str, header: bytes) -> int:
    """The status of a GET with one raw header line, sent as bytes."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + header + b"\r\n"
    )
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.transport.abort()
    return int(status_line.split()[1])


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


async def _post_raw(url: str, raw: bytes) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session:
        return await _post(session, url, raw, "application/msgpack")


async def _is_up(cluster: Cluster, session: aiohttp.ClientSession, url: str) -> bool:
    cluster.check_alive()
    try:
        async with session.get(url + "/healthz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


_UPGRADE = (
    b"GET /p2p HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _peer_garbage(rng: random.Random) -> bytes:
    """What a port scanner or a confused client sends: not HTTP, broken HTTP, or an upgrade and then junk."""
    junk = rng.randbytes(rng.randrange(1, 3000))
    return rng.choice(
        [
            junk,
            b"GET /p2p HTTP/1.1\r\n" + junk,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + junk,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + junk,  # a TLS ClientHello
            _UPGRADE + junk,
            _UPGRADE[: rng.randrange(len(_UPGRADE))],
        ]
    )


async def _send_peer_garbage(cluster: Cluster, *, connections: int) -> None:
    """Garbage to validator-0's peer port, 20 connections at a time; waits until the port listens."""
    host, port = cluster.peer_address(0)
    rng = random.Random(17)

    async def listening() -> bool:
        cluster.check_alive()
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            return False
        writer.transport.abort()
        return True

    async def one(data: bytes, wait_for_answer: bool) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(data)
        await writer.drain()
        if wait_for_answer:
            with contextlib.suppress(TimeoutError, ConnectionError):
                await asyncio.wait_for(reader.read(), timeout=5)
        writer.transport.abort()

    await wait_until(listening, timeout_s=30, what="the peer port")
    for _ in range(connections // 20):
        await asyncio.gather(*(one(_peer_garbage(rng), rng.random() < 0.5) for _ in range(20)))


async def test_http_and_peer_port_abuse_gets_4xx_and_one_log_line_per_cause(tmp_path: Path) -> None:
    # Issue 17 items 3-5: 500s for deep JSON and a bad gzip body, a 202 for a pending transaction posted
    # again with a zero signature, and a traceback per dropped POST or per garbage connection.
    # Two of four validators: no quorum, so a submitted transaction stays pending.
    with running_cluster(tmp_path, only=("validator-0", "validator-1", "observer-0")) as cluster:
        garbage = asyncio.ensure_future(_send_peer_garbage(cluster, connections=120))
        urls = [cluster.api_url("validator-0"), cluster.api_url("observer-0")]
        async with aiohttp.ClientSession() as session:
            for url in urls:
                await wait_until(lambda url=url: _is_up(cluster, session, url), timeout_s=30, what="the API")
            json_type = {"Content-Type": "application/json"}
            for url in urls:
                async with session.post(url + "/v1/txs", data=b"[" * 100_000, headers=json_type) as response:
                    assert response.status == 400, url
                    assert (await response.json())["error"] == "malformed"
                for body in (b"this is not gzip", gzip.compress(b"{}")):
                    headers = {**json_type, "Content-Encoding": "gzip"}
                    async with session.post(url + "/v1/txs", data=body, headers=headers) as response:
                        assert response.status == 415, url
                        assert (await response.json())["error"] == "unsupported_encoding"
            good = sign_transaction(_body(cluster), dev_admin_key("bank"))
            unsigned = codec.encode({"body": good.body_bytes, "signature": bytes(64)})
            for url in urls:
                status, document = await _post(session, url, good.raw, "application/msgpack")
                assert (status, document["status"]) == (202, "pending")
                status, document = await _post(session, url, unsigned, "application/msgpack")
                assert (status, document["error"]) == (400, "bad_signature"), url
                status, document = await _post(session, url, good.raw, "application/msgpack")
                assert status == 202  # the genuine one again: idempotent
        # An Expect header that is not UTF-8 (aiohttp's own handler answered it with a 500 and a traceback),
        # on an API route, a dashboard page, a path no route has, and the peer port's upgrade and elsewhere.
        api = _host_port(urls[0])
        ports = [
            (*api, "/v1/status"),
            (*api, "/orgs"),
            (*api, "/no/such/path"),
            (*api, "/%3Cscript%3E/events"),
        ]
        if not cluster.tls:
            ports += [(*cluster.peer_address(0), "/p2p"), (*cluster.peer_address(0), "/elsewhere")]
        for host, port, path in ports:
            assert await _raw_status(host, port, path, b"Expect: 100-co\xc3$#ntinue\r\n") == 417, path
        # The fallback route answers as aiohttp did: 405 for a path of other methods, 404 for no path.
        assert await _raw_status(*api, "/v1/txs", b"X-Any: 1\r\n") == 405
        assert await _raw_status(*api, "/no/such/path", b"X-Any: 1\r\n") == 404
        # Twenty clients that drop their POST halfway through the body.
        for _ in range(20):
            _, writer = await asyncio.open_connection(*_host_port(urls[0]))
            writer.write(
                b"POST /v1/txs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"body": {'
            )
            await writer.drain()
            writer.transport.abort()
        await garbage
        async with aiohttp.ClientSession() as session:
            await wait_until(lambda: _is_up(cluster, session, urls[0]), timeout_s=10, what="the API")
        log = (cluster.homes["validator-0"] / "node.log").read_text()
        assert "Traceback" not in log
        assert log.count("a client went away during POST /v1/txs") == 1  # then silent for a minute
        warnings = [line for line in log.splitlines() if " WARNING " in line]
        assert len(warnings) <= 12, "\n".join(warnings)  # one per cause, not one per connection
