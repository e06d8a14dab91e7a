"""/v1/events?from_height=H on a real node process (issue 18 problem 7): committed blocks are replayed from
H, then the stream goes live with no gap and no repeat, also while blocks commit during the replay; a
consumer that reconnects misses nothing; the replay is bounded, and nonsense filters are 400."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client import ApiError, CarbonClient, Signer
from core.devkeys import dev_admin_key
from node.config import load_config, write_config
from tests.integration.cluster import Cluster, wait_until

pytestmark = pytest.mark.timeout(120)
_refs = itertools.count()


async def deposit(client: CarbonClient, signer: Signer) -> str:
    tx = signer.build("deposit_cash", {"org": "ent-a", "amount_fen": 1, "bank_ref": f"EV-{next(_refs)}"})
    status = await client.submit_and_wait(tx)
    assert status.is_ok
    return status.tx_id


def heights_of(events: list[dict[str, Any]], kind: str) -> list[int]:
    return [event["height"] for event in events if event["type"] == kind]


def tx_ids_of(events: list[dict[str, Any]]) -> list[str]:
    return [event["tx_id"] for event in events if event["type"] == "tx"]


async def take(stream: Any, count: int) -> list[dict[str, Any]]:
    return await take_until(stream, lambda events: len(events) == count)


async def take_until(stream: Any, done: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        async for event in stream:
            events.append(event)
            if done(events):
                break
    return events


def through(tx_id: str, height: int) -> Any:
    """Until the stream has shown tx_id and the block event of `height` (blocks may be empty: a block
    certifies the roots of an earlier height, so a transaction can be followed by empty blocks)."""
    return lambda events: tx_id in tx_ids_of(events) and height in heights_of(events, "block")


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    network = Cluster(tmp_path, validators=1, observers=0)
    home = network.homes["validator-0"]
    config = load_config(home)
    api = config.api.model_copy(update={"event_replay_blocks_max": 40})
    write_config(home, config.model_copy(update={"api": api}))
    try:
        network.start()
        yield network
        network.close()
        network.assert_no_tracebacks()
    except BaseException:
        print(network.log_tail("validator-0"))
        raise
    finally:
        network.close()


async def test_replay_then_live_across_a_reconnect_misses_nothing(cluster: Cluster) -> None:
    async with CarbonClient(cluster.api_url("validator-0")) as client:
        await wait_until(client.is_ready, timeout_s=30, what="the node to be ready")
        signer = await client.signer(org="bank", key=dev_admin_key("bank"))
        ids = [await deposit(client, signer) for _ in range(3)]
        tip = (await client.status())["height"]

        # A consumer from height 1: the committed blocks, then live ones.
        stream = client.events(from_height=1)
        seen = await take_until(stream, through(ids[-1], tip))
        live = asyncio.ensure_future(take_until(stream, lambda events: len(tx_ids_of(events)) == 1))
        ids.append(await deposit(client, signer))
        seen += await live
        await stream.aclose()  # the consumer goes away ...
        last = max(heights_of(seen, "block"))
        assert heights_of(seen, "block") == list(range(1, last + 1)) and tx_ids_of(seen) == ids

        ids += [await deposit(client, signer) for _ in range(2)]  # ... while more blocks commit
        tip = (await client.status())["height"]
        again = client.events(from_height=last + 1)  # and comes back after the last block it saw
        resumed = await take_until(again, through(ids[-1], tip))
        live = asyncio.ensure_future(take_until(again, lambda events: len(tx_ids_of(events)) == 1))
        ids.append(await deposit(client, signer))
        resumed += await live
        await again.aclose()
        seen += resumed
        last = max(heights_of(seen, "block"))
        assert heights_of(seen, "block") == list(range(1, last + 1)) and tx_ids_of(seen) == ids

        # Blocks commit while a replay from 1 runs: still every height once, in order, then live.
        background = asyncio.gather(*(deposit(client, signer) for _ in range(6)))
        replay = client.events(from_height=1)
        events = await take_until(replay, lambda events: len(tx_ids_of(events)) == len(ids) + 6)
        ids += await background
        await replay.aclose()
        blocks = heights_of(events, "block")
        assert blocks == list(range(1, max(blocks) + 1))
        assert sorted(tx_ids_of(events)) == sorted(ids) and len(set(tx_ids_of(events))) == len(ids)


async def test_follow_events_resumes_after_the_node_restarts(cluster: Cluster) -> None:
    url = cluster.api_url("validator-0")
    async with CarbonClient(url) as client:
        await wait_until(client.is_ready, timeout_s=30, what="the node to be ready")
        signer = await client.signer(org="bank", key=dev_admin_key("bank"))
        first = await deposit(client, signer)
        follower = client.follow_events(from_height=1)
        seen = await take_until(follower, lambda events: first in tx_ids_of(events))
        assert cluster.terminate("validator-0") == 0
        cluster.start("validator-0")
        await wait_until(client.is_ready, timeout_s=30, what="the node to be ready again")
        signer = await client.signer(org="bank", key=dev_admin_key("bank"))
        second = await deposit(client, signer)
        seen += await take_until(follower, lambda events: second in tx_ids_of(events))
        await follower.aclose()
        blocks = heights_of(seen, "block")
        assert blocks == list(range(1, max(blocks) + 1)) and tx_ids_of(seen) == [first, second]


async def test_the_replay_is_bounded_and_filters_are_checked(cluster: Cluster) -> None:
    url = cluster.api_url("validator-0")
    async with CarbonClient(url) as client:
        await wait_until(client.is_ready, timeout_s=30, what="the node to be ready")
        signer = await client.signer(org="bank", key=dev_admin_key("bank"))
        txs = [
            signer.build("deposit_cash", {"org": "ent-a", "amount_fen": 1, "bank_ref": f"B-{i}"})
            for i in range(41)
        ]
        for tx in txs:  # at least 41 blocks: more than this node's event_replay_blocks_max
            assert (await client.submit_and_wait(tx)).is_ok
        tip = (await client.status())["height"]
        with pytest.raises(ApiError) as refused:
            await take(client.events(from_height=tip - 40), 1)
        assert refused.value.status == 400 and refused.value.code == "replay_too_long"
        replay = client.events(from_height=tip - 39)  # exactly at the bound
        assert (
            heights_of(await take_until(replay, lambda e: tip in heights_of(e, "block")), "block")[0]
            == tip - 39
        )
        await replay.aclose()
    async with aiohttp.ClientSession() as session:
        for query in ("blocks=maybe", "from_height=-1", "org=Not%20An%20Org", "tx=abc", "since=3"):
            async with session.get(f"{url}/v1/events?{query}") as response:
                assert response.status == 400, query
                assert (await response.json())["error"] == "invalid_request", query
        async with session.get(f"{url}/v1/events?from_height=1") as response:
            body = await response.json()
            assert response.status == 400 and body["error"] == "replay_too_long"
            assert f"subscribe with from_height >= {tip - 39}" in body["message"]
