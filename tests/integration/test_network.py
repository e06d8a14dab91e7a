"""A real network (OS processes, sockets on 127.0.0.1, LevelDB) under crashes, pauses, restarts and bad input."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from client import CarbonClient
from tests.integration.cluster import (
    Cluster,
    bank_signer,
    deposit,
    get_status,
    running_cluster,
    wait_all_live,
    wait_for_agreement,
    wait_until,
)
from tools.bench.network import find_free_port_base

pytestmark = pytest.mark.timeout(180)


async def test_network_commits_transactions_submitted_to_any_node_and_all_agree(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        await wait_all_live(cluster)
        tx_ids = []
        for name in cluster.names:  # every validator, and the observer (which forwards)
            async with CarbonClient(cluster.api_url(name)) as client:
                signer = await bank_signer(client)
                tx_ids += [await client.submit(deposit(signer)) for _ in range(5)]
        async with CarbonClient(cluster.api_url("validator-2")) as client:
            statuses = await client.wait_for_commits(tx_ids, timeout_s=30)
            assert all(status.is_ok for status in statuses.values())
            holdings = await client.query("holdings", org="ent-a")
            assert holdings["cash_fen"]["available"] == 100 * len(tx_ids)
        final = await wait_for_agreement(cluster, cluster.names, min_height=1)
        assert final["height"] >= 1


async def test_killed_primary_is_replaced_and_catches_up_after_restart(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        await wait_all_live(cluster)
        async with CarbonClient(cluster.api_url("validator-1")) as client:
            signer = await bank_signer(client)
            assert (await client.submit_and_wait(deposit(signer), timeout_s=20)).is_ok
            cluster.kill("validator-0")  # the primary of view 0
            status = await client.submit_and_wait(deposit(signer), timeout_s=20)
            assert status.is_ok
            after = await client.status()
            assert after["view"] >= 1 and after["primary"] != 0
        cluster.start("validator-0")
        await wait_for_agreement(cluster, cluster.names, min_height=status.height or 0, timeout_s=40)


async def test_two_of_four_down_commits_nothing_until_one_returns(tmp_path: Path) -> None:
    with running_cluster(tmp_path, observers=0) as cluster:
        await wait_all_live(cluster)
        cluster.kill("validator-2")
        cluster.kill("validator-3")
        async with CarbonClient(cluster.api_url("validator-0")) as client:
            signer = await bank_signer(client)
            tx_id = await client.submit(deposit(signer))
            with pytest.raises(Exception, match="not committed"):
                await client.wait_for_commit(tx_id, timeout_s=4)
            assert (await client.status())["height"] == 0
            cluster.start("validator-2")
            status = await client.wait_for_commit(tx_id, timeout_s=40)
            assert status.is_ok


async def test_paused_validator_catches_up_and_network_never_stalls(tmp_path: Path) -> None:
    with running_cluster(tmp_path, observers=0) as cluster:
        await wait_all_live(cluster)
        async with CarbonClient(cluster.api_url("validator-0")) as client:
            signer = await bank_signer(client)
            cluster.pause("validator-3")
            for _ in range(3):  # each commits while validator-3 is stopped, across several view timeouts
                assert (await client.submit_and_wait(deposit(signer), timeout_s=20)).is_ok
                await asyncio.sleep(1.0)  # let the pause outlast the 1 s view timeout
            cluster.resume("validator-3")
            last = await client.submit_and_wait(deposit(signer), timeout_s=20)
            assert last.is_ok
        await wait_for_agreement(cluster, cluster.validator_names, min_height=last.height or 0, timeout_s=40)


async def test_whole_network_restart_continues_with_nothing_lost(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        await wait_all_live(cluster)
        async with CarbonClient(cluster.api_url("validator-0")) as client:
            signer = await bank_signer(client)
            tx_ids = [await client.submit(deposit(signer)) for _ in range(20)]
            committed = await client.wait_for_commits(tx_ids, timeout_s=30)
        before = await wait_for_agreement(cluster, cluster.names, min_height=1)
        for name in cluster.names:
            assert cluster.terminate(name) == 0, cluster.log_tail(name)
        cluster.start()
        await wait_all_live(cluster)
        async with CarbonClient(cluster.api_url("validator-3")) as client:
            for tx_id, status in committed.items():
                again = await client.get_transaction(tx_id)
                assert (again.height, again.code) == (status.height, status.code)
            signer = await bank_signer(client)
            new = await client.submit_and_wait(deposit(signer), timeout_s=30)
            assert new.is_ok and (new.height or 0) > before["height"]
        await wait_for_agreement(cluster, cluster.names, min_height=new.height or 0)


async def test_a_second_process_running_a_validators_key_does_not_split_or_stall_the_chain(
    tmp_path: Path,
) -> None:
    # Jepsen's duplicated validators: an operator starts validator-1 twice (a failover gone wrong). The twin
    # dials the others with the same identity, so their links to "validator 1" keep replacing each other,
    # and both copies vote. Votes count per validator index, so the pair is at most one faulty validator.
    with running_cluster(tmp_path) as cluster:
        twin = cluster.homes["validator-1"].parent / "validator-1-twin"
        shutil.copytree(cluster.homes["validator-1"], twin)
        port = find_free_port_base(1)
        config = (twin / "config.toml").read_text()
        config = config.replace(f"listen_port = {cluster.peer_address(1)[1]}", f"listen_port = {port}")
        api_port = int(cluster.api_url("validator-1").rsplit(":", 1)[1])
        config = config.replace(f"listen_port = {api_port}", f"listen_port = {port + 100}")
        (twin / "config.toml").write_text(config)
        await wait_all_live(cluster)
        cluster.homes["twin"] = twin
        cluster.start("twin")
        tx_ids = []
        async with CarbonClient(cluster.api_url("validator-0")) as client:
            signer = await bank_signer(client)
            for _ in range(4):
                tx_ids += [await client.submit(deposit(signer)) for _ in range(5)]
                await asyncio.sleep(0.5)  # several blocks, while the links to validator 1 flap
            statuses = await client.wait_for_commits(tx_ids, timeout_s=60)
            assert all(status.is_ok for status in statuses.values())
            last = max(status.height or 0 for status in statuses.values())
        others = ["validator-0", "validator-2", "validator-3", "observer-0"]
        final = await wait_for_agreement(cluster, others, min_height=last, timeout_s=40)
        # the twin follows the same chain: its block at the highest height both have is the same block
        twin_url = f"http://127.0.0.1:{port + 100}"

        async def twin_status() -> dict[str, Any] | None:
            cluster.check_alive()
            async with aiohttp.ClientSession() as session:
                return await get_status(session, twin_url)

        # its API opens only after its links are up (or after 5 s), later than the others' under load
        await wait_until(twin_status, timeout_s=30, what="the twin's API")
        async with CarbonClient(twin_url) as twin_client:
            twin_height = (await twin_client.status())["height"]
            height = min(twin_height, final["height"])
            assert height >= 1
            ours = (await client_block(cluster, "validator-0", height))["hash"]
            assert (await twin_client.block(height))["hash"] == ours
        cluster.check_alive()


async def client_block(cluster: Cluster, name: str, height: int) -> dict[str, Any]:
    async with CarbonClient(cluster.api_url(name)) as client:
        return await client.block(height)
