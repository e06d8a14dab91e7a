"""Reconfiguration on a real network of OS processes, under a steady load of transactions: a fifth
validator made by its own member joins through `node join`, catches up and votes from its activation
height; then a genesis validator is removed and refused; no acknowledged transaction is lost and
`audit verify` checks the whole chain, both changes included, from the genesis alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import main
from client import CarbonClient
from core.keystore import load_key
from core.votes import compute_node_key_proof_digest
from tests.integration.cluster import Cluster, running_cluster, wait_until
from tools import reconfig_demo as demo
from tools.bench.network import find_free_port_base

pytestmark = pytest.mark.timeout(420)
APPROVERS = ("mee", "bank", "ent-a")  # 3 of the 4 governance members: over the default 2/3


def make_joining_member(root: Path, cluster: Cluster) -> tuple[Path, str, str]:
    """The new validator's member folder, made as on its own machine; its peer and API addresses."""
    base = find_free_port_base(1)
    peer, api = f"127.0.0.1:{base}", f"127.0.0.1:{base + 100}"
    folder = root / "joiner"
    made = CliRunner().invoke(main, ["member", "init", "--dir", str(folder), "--org", "mee", "--name",
                                     "Ministry, second site", "--role", "regulator", "--validator", peer, api,
                                     "--no-encrypt"])  # fmt: skip
    assert made.exit_code == 0, made.output
    return folder, peer, api


async def test_a_validator_joins_and_votes_and_another_leaves_under_load(tmp_path: Path) -> None:
    with running_cluster(tmp_path / "net") as cluster:
        genesis = cluster.genesis
        folder, peer_address, api_address = make_joining_member(tmp_path, cluster)
        node_key = load_key(folder / "keys" / "node-0.json")
        proof = node_key.sign(
            compute_node_key_proof_digest(genesis.chain_id, "mee", node_key.public_key, None)
        )
        async with CarbonClient(cluster.api_url("validator-0")) as client:
            await wait_until(client.is_ready, timeout_s=60, what="validator-0 ready")
            async with demo.load_on(client) as load:
                # 1. the fifth validator: approved, joined, caught up, voting after L
                added = await demo.govern(client, genesis, "add_validator", {"org": "mee", "node_key": node_key.public_key.hex(),
                                     "peer_address": peer_address, "api_address": api_address,
                                     "proof": proof.hex()})  # fmt: skip
                assert added["number"] == 4
                last = int(added["activation_height"])
                home = tmp_path / "validator-4"
                joined = await cli(["node", "join", "--genesis", str(cluster.homes["validator-0"] / "genesis.json"),
                                                   "--member-dir", str(folder), "--home", str(home),
                                                   "--node", cluster.api_url("validator-0")])  # fmt: skip
                assert joined.exit_code == 0, joined.output
                assert f"votes from height {last + 1}" in joined.output
                cluster.add_node("validator-4", home, f"http://{api_address}")
                cluster.start("validator-4")
                joiner = cluster.api_url("validator-4")
                await wait_until(
                    lambda: demo.is_past(joiner, last + 3), timeout_s=120, what="validator-4 past L + 3"
                )
                # with validator-1 down, the five's quorum of four needs validator-4's votes
                cluster.kill("validator-1")
                start = await demo.height_of(cluster.api_url("validator-0"))
                await wait_until(
                    lambda: demo.is_past(joiner, start + 5), timeout_s=60, what="commits without validator-1"
                )
                block = await client.block(start + 3)
                assert 4 in [vote["validator"] for vote in block["certificate"]["votes"]]

                # 2. validator-1 leaves: the set in force is 0, 2, 3, 4 from its activation on
                removed = await demo.govern(
                    client, genesis, "remove_validator", {"node_key": genesis.validators[1].node_key}
                )
                assert removed["number"] == 1
                last_of_five = int(removed["activation_height"])
                await wait_until(
                    lambda: demo.is_past(joiner, last_of_five + 3), timeout_s=120, what="past the removal"
                )
                view = await client.query("validators")
                assert [v["number"] for v in view["validators"]] == [0, 2, 3, 4]
                assert [(e["first_height"], e["last_height"]) for e in view["history"]] == [
                    (1, last), (last + 1, last_of_five), (last_of_five + 1, None)]  # fmt: skip
                # restarted, the removed validator is refused by every member of the set
                cluster.start("validator-1")
                await wait_until(lambda: _logged(cluster, "validator-1", "unknown-peer"), timeout_s=60,
                                 what="validator-1 refused")  # fmt: skip
                await wait_until(
                    lambda: _reachable(cluster.api_url("validator-1")), timeout_s=60, what="v1 API"
                )
                assert (
                    await demo.height_of(cluster.api_url("validator-1")) <= last_of_five + 1
                )  # nobody serves it
            # 3. nothing acknowledged is lost; every node agrees; the audit follows both changes
            assert len(load.acknowledged) > 50
            statuses = await client.wait_for_commits(load.acknowledged, timeout_s=120)
            assert all(status.is_committed for status in statuses.values())
        tip = await demo.height_of(cluster.api_url("validator-0"))
        for name in ("validator-2", "validator-3", "validator-4", "observer-0"):
            await wait_until(
                lambda n=name: demo.is_past(cluster.api_url(n), tip - 1), timeout_s=60, what=f"{name} at tip"
            )
        genesis_file = str(cluster.homes["validator-0"] / "genesis.json")
        audited = await cli(
            ["audit", "verify", "--genesis", genesis_file, "--node", cluster.api_url("observer-0")]
        )
        assert audited.exit_code == 0, audited.output
        # a state proof certified by the four of the second change: proven from the genesis by two handovers
        proved = await cli(["audit", "proof", "org/ent-a", "--genesis", genesis_file, "--json",
                            "--node", cluster.api_url("validator-2")])  # fmt: skip
        assert proved.exit_code == 0, proved.output
        answer = json.loads(proved.output)
        assert (answer["verified"], answer["validator_set_changes"], answer["validators"]) == (True, 2, 4)


async def cli(args: list[str]) -> Any:
    """Run a CLI command the way a user does: its own event loop (on a thread of its own)."""
    return await asyncio.to_thread(CliRunner().invoke, main, args)


async def _reachable(url: str) -> bool:
    with contextlib.suppress(Exception):
        await demo.height_of(url)
        return True
    return False


async def _logged(cluster: Cluster, name: str, text: str) -> bool:
    return text in cluster.log_tail(name, lines=400)


async def test_the_reconfiguration_demo_grows_the_set_to_five_and_back(tmp_path: Path) -> None:
    """tools/reconfig_demo.py, the documented demonstration, against a test network as against a devnet."""
    with running_cluster(tmp_path / "net") as cluster:
        async with CarbonClient(cluster.api_url("validator-0")) as client:
            await wait_until(client.is_ready, timeout_s=60, what="validator-0 ready")
        genesis_file = cluster.homes["validator-0"] / "genesis.json"
        lines: list[str] = []
        outcome = await demo.grow_and_shrink(
            cluster.api_url("validator-0"), genesis_file, tmp_path, lines.append
        )
        assert outcome.number == 4 and outcome.joined_from < outcome.left_after
        assert outcome.acknowledged > 20
        async with CarbonClient(cluster.api_url("observer-0")) as observer:
            view = await observer.query("validators")
        assert [v["number"] for v in view["validators"]] == [0, 1, 2, 3]
        assert any("node join" in line for line in lines)
