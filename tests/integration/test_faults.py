"""A real network under injected network faults: loss and jitter on every link, a one-way partition, a
flapping link, and all of it over TLS too (tests/integration/faultproxy.py says what each fault models).

Every scenario checks the same two things: the network keeps committing while the fault lasts, and every
transaction acknowledged as committed is committed, at the same height with the same result, on every node.
`CARBONCHAIN_FAULT_SEED=<n>` repeats a run's fault sequence (the default seed is fixed), and
`CARBONCHAIN_FAULT_SOAK=<factor>` makes every fault last that many times longer (a soak run by hand).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from client import CarbonClient
from tests.integration.cluster import (
    assert_committed_everywhere,
    commit_waves,
    running_cluster,
    wait_all_live,
)
from tests.integration.faultproxy import FaultNetwork, LinkFaults

SEED = int(os.environ.get("CARBONCHAIN_FAULT_SEED", "17"))
SOAK = float(os.environ.get("CARBONCHAIN_FAULT_SOAK", "1"))
pytestmark = pytest.mark.timeout(180 + 20 * SOAK)
# 5% of TCP segments lost (each costs a 200 ms retransmission stall), 50 ms of jitter, and now and then a
# duplicated or reordered message, on both directions of every link.
LOSSY = LinkFaults(latency_ms=2, jitter_ms=50, loss=0.05, frame_duplicate=0.01, frame_reorder=0.01)


@pytest.fixture
def proxies() -> Iterator[FaultNetwork]:
    network = FaultNetwork(SEED)
    print(f"fault seed {SEED} (CARBONCHAIN_FAULT_SEED={SEED} repeats it)")
    try:
        yield network
    finally:
        network.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_commits_continue_under_loss_and_jitter_on_every_link(
    tmp_path: Path, proxies: FaultNetwork, tls: bool
) -> None:
    with running_cluster(tmp_path, proxies=proxies, tls=tls) as cluster:
        proxies.set_faults(LOSSY)
        await wait_all_live(cluster)
        committed = await commit_waves(cluster, cluster.names, seconds=5 * SOAK)
        stats = proxies.stats()
        assert stats.stalls > 0 and stats.units > 0, stats  # the faults really happened
        if not tls:  # message-level faults need the frame boundaries, which TLS hides
            assert stats.duplicated > 0 and stats.reordered > 0, stats
        proxies.heal()
        await assert_committed_everywhere(cluster, cluster.names, committed)


async def test_one_way_partition_of_the_primary(tmp_path: Path, proxies: FaultNetwork) -> None:
    # Validator-0, the primary of view 0, hears everyone but nobody hears it: the others must move to a
    # new view and keep committing; once healed it follows them again.
    with running_cluster(tmp_path, proxies=proxies) as cluster:
        await wait_all_live(cluster)
        before = await commit_waves(cluster, ["validator-1"], seconds=0)
        proxies.isolate_one_way("validator-0")
        others = ["validator-1", "validator-2", "validator-3", "observer-0"]
        during = await commit_waves(cluster, others, seconds=4 * SOAK)
        async with CarbonClient(cluster.api_url("validator-2")) as client:
            status = await client.status()
            assert status["view"] >= 1 and status["primary"] != 0
        assert proxies.stats().held > 0
        proxies.heal()
        after = await commit_waves(cluster, ["validator-0"], seconds=0)
        await assert_committed_everywhere(cluster, cluster.names, before | during | after)


async def test_flapping_link_between_two_validators(tmp_path: Path, proxies: FaultNetwork) -> None:
    # The link validator-1 <-> validator-2 goes down for 0.3-1 s every 0.5-1.5 s under load; validator-0's
    # link to validator-3 flaps too, so two of the four validators are never fully linked.
    with running_cluster(tmp_path, proxies=proxies) as cluster:
        await wait_all_live(cluster)
        proxies.flap("validator-1", "validator-2", up_ms=(500, 1500), down_ms=(300, 1000))
        proxies.flap("validator-0", "validator-3", up_ms=(500, 1500), down_ms=(300, 1000))
        committed = await commit_waves(cluster, cluster.validator_names, seconds=6 * SOAK)
        assert proxies.stats("validator-1->validator-2").cuts >= 2
        proxies.heal()
        await assert_committed_everywhere(cluster, cluster.names, committed)
