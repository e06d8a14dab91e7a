"""Fuzzing as a test: the HTTP API and the peer frames after the handshake, against real node processes.

By default each runs a few thousand inputs (seconds). The long mode is the same test with bigger numbers:

    CARBONCHAIN_FUZZ_API_INPUTS=1000000 pytest tests/fuzz -k api     # a million API inputs
    CARBONCHAIN_FUZZ_PEER_FRAMES=100000 pytest tests/fuzz -k peer    # a hundred thousand peer frames

`CARBONCHAIN_FUZZ_SEED` (default 1) picks the input sequence and `CARBONCHAIN_FUZZ_START` its first index,
so a long run can be split into chunks and any failing input replayed alone (its index is in the report).
docs/TESTING.md has the commands and the results of the long runs.
"""

from __future__ import annotations

import asyncio
import collections
import os
import time
from pathlib import Path

import aiohttp
import pytest

from client import CarbonClient
from p2p.identity import PeerId
from tests.fuzz.apifuzz import ApiInputs, HttpInput, is_acceptable, send
from tests.fuzz.peerfuzz import PeerFuzzer
from tests.integration.cluster import (
    Cluster,
    bank_signer,
    deposit,
    get_status,
    running_cluster,
    wait_all_live,
)

API_INPUTS = int(os.environ.get("CARBONCHAIN_FUZZ_API_INPUTS", "1500"))
PEER_FRAMES = int(os.environ.get("CARBONCHAIN_FUZZ_PEER_FRAMES", "1000"))
SEED = int(os.environ.get("CARBONCHAIN_FUZZ_SEED", "1"))
START = int(os.environ.get("CARBONCHAIN_FUZZ_START", "0"))
API_WORKERS = 16
FAILURES_MAX = 20  # stop after this many failing inputs: the report lists them


def _timeout_s(count: int, per_input_s: float) -> float:
    return 180 + count * per_input_s


@pytest.mark.timeout(_timeout_s(API_INPUTS, 0.02))
async def test_fuzz_http_api(tmp_path: Path) -> None:
    with running_cluster(tmp_path) as cluster:
        await wait_all_live(cluster)
        targets = [_host_port(cluster.api_url("validator-1")), _host_port(cluster.api_url("observer-0"))]
        catalogue_url = cluster.api_url("validator-1") + "/v1/carbon/queries"
        async with aiohttp.ClientSession() as session, session.get(catalogue_url) as response:
            catalogue = await response.json()
        inputs = ApiInputs(SEED, cluster.genesis.chain_id, catalogue)
        statuses: collections.Counter[int] = collections.Counter()
        failures: list[str] = []
        height = 1
        indices = iter(range(START, START + API_INPUTS))
        started = time.monotonic()

        async def worker() -> None:
            for index in indices:
                if len(failures) >= FAILURES_MAX:
                    return
                item: HttpInput = inputs.make(index, height)
                answer = await send(*targets[index % 2], item)
                statuses.update(answer.statuses)
                if not is_acceptable(item, answer):
                    failures.append(
                        f"{answer.statuses} {answer.error_codes} hung={answer.hung} {item.describe()}"
                    )

        async def watch() -> None:
            nonlocal height
            while True:
                await asyncio.sleep(2)
                cluster.check_alive()
                async with aiohttp.ClientSession() as session:
                    status = await get_status(session, cluster.api_url("validator-1"))
                if status is not None:
                    height = status["height"]

        watcher = asyncio.ensure_future(watch())
        try:
            await asyncio.gather(*(worker() for _ in range(API_WORKERS)))
        finally:
            watcher.cancel()
        elapsed = time.monotonic() - started
        print(
            f"API fuzz: seed {SEED}, inputs {START}..{START + API_INPUTS - 1}, {elapsed:.0f} s, "
            f"statuses {dict(sorted(statuses.items()))}, {len(failures)} failures"
        )
        assert not failures, "\n".join(failures)
        cluster.check_alive()
        await _assert_still_commits(cluster, "observer-0")


@pytest.mark.timeout(_timeout_s(PEER_FRAMES, 0.03))
async def test_fuzz_peer_frames(tmp_path: Path) -> None:
    def fuzzable(cluster: Cluster) -> None:
        for name in cluster.validator_names:  # a banned fuzzer may come back at once
            cluster.update_config(name, "peer", ban_duration_ms=1)

    targets = [PeerId.validator(i) for i in (1, 2, 3)]
    with running_cluster(
        tmp_path, observers=0, only=tuple(str(t) for t in targets), prepare=fuzzable
    ) as cluster:
        await wait_all_live(cluster, [str(t) for t in targets])
        fuzzers = [
            PeerFuzzer(cluster.genesis, SEED, target, ":".join(map(str, cluster.peer_address(target.index))))
            for target in targets
        ]
        started = time.monotonic()

        async def drive(position: int, fuzzer: PeerFuzzer) -> None:
            for index in range(START + position, START + PEER_FRAMES, len(fuzzers)):
                frame, _ = fuzzer.make(index)
                await fuzzer.send(frame)
                if index % 500 < len(fuzzers):
                    cluster.check_alive()

        try:
            await asyncio.gather(*(drive(i, fuzzer) for i, fuzzer in enumerate(fuzzers)))
        finally:
            for fuzzer in fuzzers:
                await fuzzer.close()
        elapsed = time.monotonic() - started
        confirmed = sum(f.frames_confirmed for f in fuzzers)
        cost_link = sum(f.frames_cost_link for f in fuzzers)
        print(
            f"peer fuzz: seed {SEED}, frames {START}..{START + PEER_FRAMES - 1}, {elapsed:.0f} s, "
            f"{confirmed} handled with the link kept, {cost_link} cost the link (all handled)"
        )
        assert confirmed + cost_link == PEER_FRAMES
        assert confirmed > 0 and cost_link > 0  # both kinds were exercised
        cluster.check_alive()
        await _assert_still_commits(cluster, "validator-1")


async def _assert_still_commits(cluster: Cluster, name: str) -> None:
    """The chain still orders transactions (the fuzzed ones may well have frozen the bank: any result does)."""
    async with CarbonClient(cluster.api_url(name)) as client:
        status = await client.submit_and_wait(deposit(await bank_signer(client)), timeout_s=60)
        assert status.is_committed


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)
