"""A Byzantine validator in a real network (OS processes, sockets on 127.0.0.1, LevelDB), under load.

One of four validators runs a test-only Byzantine behaviour (CARBONCHAIN_TEST_BYZANTINE, node/byzantine.py):
it proposes invalid blocks as the primary of view 0, equivocates as that primary (two blocks for one slot),
or votes for two blocks at every height. The three honest validators are a quorum: the network keeps
committing, every acknowledged transaction is committed identically on every honest node (the observer
too), no block the liar proposed invalid is ever committed, the liar is reported (a log line for an invalid
block, evidence on chain for conflicting signatures), and `audit verify` re-executes the chain from genesis.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from click.testing import CliRunner

from cli import main
from client import CarbonClient
from core.devkeys import dev_node_key
from node.byzantine import BYZANTINE_ENV
from tests.integration.cluster import (
    Cluster,
    assert_committed_everywhere,
    commit_waves,
    running_cluster,
    wait_all_live,
    wait_linked,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)
NAMES = ("validator-0", "validator-1", "validator-2", "validator-3", "observer-0")  # running_cluster's
EVIDENCE_KINDS = {"equivocate": {"pre_prepare"}, "double_vote": {"prepare", "commit"}}


async def evidence_against(cluster: Cluster, index: int) -> list[dict[str, Any]]:
    async with CarbonClient(cluster.api_url("observer-0")) as client:
        key = dev_node_key("validator", index).public_key.hex()
        return list((await client.query("evidence", validator=key))["items"])


def logged_anywhere(cluster: Cluster, names: list[str], text: str) -> bool:
    return any(text in cluster.log_tail(name, lines=100_000) for name in names)


@pytest.mark.parametrize(
    ("behaviour", "liar"),
    [("invalid_block", 0), ("equivocate", 0), ("double_vote", 3)],  # 0 is the primary of view 0
)
async def test_a_byzantine_validator_is_outvoted_and_reported(
    tmp_path: Any, behaviour: str, liar: int
) -> None:
    name = f"validator-{liar}"
    honest = [n for n in NAMES if n != name]
    validators = [n for n in honest if n.startswith("validator-")]
    env = {name: {BYZANTINE_ENV: f"{behaviour}@1"}}
    with running_cluster(tmp_path, node_env=env, only=tuple(honest)) as cluster:
        # the liar starts last and links to all at once: what it sends first reaches every validator
        await wait_all_live(cluster, honest)
        cluster.start(name)
        await wait_linked(cluster, name)
        # the first transactions go to the liar: admitted there, they reach the others by its gossip just
        # before its proposal, so the others' timers cannot move past view 0 before it proposes
        committed = await commit_waves(cluster, [name], seconds=0)
        committed |= await commit_waves(cluster, validators, seconds=1)

        async def reported() -> Any:
            """The liar's offence, once an honest node saw it (the load goes on meanwhile)."""
            committed.update(await commit_waves(cluster, validators, seconds=0))
            if behaviour == "invalid_block":  # its first proposal has a wrong tx_root: a fault, reported
                line = f"validator {liar} misbehaved: invalid pre-prepare at view 0 height 1: tx_root"
                return logged_anywhere(cluster, validators, line)
            return await evidence_against(cluster, liar)

        offence = await wait_until(reported, timeout_s=30, what=f"{name} reported")
        assert "TEST HOOK: this validator is Byzantine" in cluster.log_tail(name, lines=100_000)
        if behaviour in EVIDENCE_KINDS:  # on chain, from the last validator in number order: it got both
            last = max(i for i in range(4) if i != liar)
            for record in offence:
                assert record["kind"] in EVIDENCE_KINDS[behaviour], record
                assert record["reporter"] == cluster.genesis.validators[last].org, record
                assert record["block_hash_1"] != record["block_hash_2"]
            if behaviour == "equivocate":  # once, with its first proposal
                [record] = offence
                assert (record["view"], record["height"]) == (0, 1)
        assert cluster.terminate(name) == 0  # a clean exit
        committed |= await commit_waves(cluster, validators, seconds=0)  # the honest three alone
        await assert_committed_everywhere(cluster, honest, committed)
        async with CarbonClient(cluster.api_url("validator-1")) as client:
            status = await client.status()
            headers = [(await client.block(h))["header"] for h in range(1, status["height"] + 1)]
        if liar == 0:  # the primary of view 0 had to be replaced
            assert status["view"] >= 1 and status["primary"] != 0
        if behaviour == "invalid_block":  # it proposed only invalid blocks: none of them made it
            assert all(header["proposer"] != liar for header in headers)
        genesis = str(cluster.homes["validator-1"] / "genesis.json")
        audited = await asyncio.to_thread(
            CliRunner().invoke,
            main,
            ["audit", "verify", "--node", cluster.api_url("validator-1"), "--genesis", genesis],
        )
        assert audited.exit_code == 0 and "VERDICT: OK" in audited.output, audited.output
