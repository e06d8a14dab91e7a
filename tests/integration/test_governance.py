"""Governance on a real network (OS processes, sockets on 127.0.0.1, LevelDB): a parameter change approved
by 2/3 of the members takes effect on every node; a four-eyes transfer waits for, then executes on, the
organisation's second key; the equivocation of a test validator (validator-3 signs two conflicting PREPAREs,
CARBONCHAIN_TEST_BYZANTINE=equivocate: node/byzantine.py) ends on chain as evidence, submitted by the
validators that saw it; a fifth validator approved by 2/3 of the members comes into force after its
activation height on every node (the four running validators, a quorum of the five, keep the chain going;
the fifth node itself is not run: the peer directory admits only genesis validators); and `audit verify`
re-executes all of it from genesis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import main
from client import CarbonClient
from core.devkeys import dev_admin_key, dev_client_key, dev_node_key
from core.keystore import save_key
from core.tx import SignedTx
from core.validators import ValidatorSet, compute_activation_height
from core.votes import compute_node_key_proof_digest
from node.byzantine import BYZANTINE_ENV
from tests.integration.cluster import Cluster, running_cluster, wait_linked, wait_until

pytestmark = pytest.mark.timeout(180)
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("governance")
    hook = {"validator-3": {BYZANTINE_ENV: "equivocate@1"}}  # once, with its first PREPARE
    # checkpoints every 10 heights: a validator-set change comes into force within 6 + 10 blocks
    with running_cluster(root, node_env=hook, consensus={"checkpoint_interval": 10}) as network:
        # the equivocation is sent once: with a link still down (slow on a loaded host) it would be lost
        asyncio.run(wait_linked(network, "validator-3", timeout_s=60))
        yield network


async def commit(client: CarbonClient, *txs: SignedTx) -> list[dict[str, Any]]:
    """Submit, wait for every commit, and return the results; each must be ok."""
    tx_ids = [await client.submit(tx) for tx in txs]
    statuses = await client.wait_for_commits(tx_ids, timeout_s=30)
    results = []
    for tx_id in tx_ids:
        status = statuses[tx_id]
        assert status.is_ok, f"{status.code}: {status.message}"
        results.append(await client.tx_result(status))
    return results


def event(result: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(e for e in result["events"] if e["type"] == kind)


async def test_a_parameter_change_by_two_thirds_and_a_four_eyes_transfer(cluster: Cluster) -> None:
    async with (
        CarbonClient(cluster.api_url("validator-0")) as client,
        CarbonClient(cluster.api_url("observer-0")) as observer,
    ):
        await wait_until(client.is_ready, timeout_s=60, what="validator-0 ready")
        admins = {org: await client.signer(org=org, key=dev_admin_key(org)) for org in
                  ("mee", "bank", "verifier-a", "ent-b")}  # fmt: skip
        members = [m["org"] for m in (await client.query("members"))["items"]]
        assert sorted(members) == ["bank", "ent-a", "mee", "verifier-a"]  # the validators' organisations
        status = await client.status()
        [created] = await commit(client, admins["mee"].build("propose", {
            "action": "set_parameter", "args": {"name": "offset_cap_bps", "value": 800},
            "expires_height": status["height"] + 500}))  # fmt: skip
        proposal = int(event(created, "proposal_created")["proposal"])
        await commit(client, admins["bank"].build("approve", {"proposal": proposal}))
        assert (await client.query("params"))["offset_cap_bps"] == 500  # 2 of 4: not yet
        [third] = await commit(client, admins["verifier-a"].build("approve", {"proposal": proposal}))
        assert [e["type"] for e in third["events"]][1:] == ["proposal_executed", "parameter_changed"]

        async def observed() -> bool:
            return bool((await observer.query("params"))["offset_cap_bps"] == 800)

        await wait_until(observed, timeout_s=30, what="the observer to apply the change")

        # four-eyes: ent-b's 15,000 t transfer (above 10,000) waits for its second key
        now = int(time.time() * 1000)
        await commit(client, admins["mee"].build("open_period", {"period": "gov-1",
                     "reporting_deadline_ms": now + DAY_MS, "surrender_deadline_ms": now + 2 * DAY_MS}))  # fmt: skip
        second = dev_client_key("ent-b")
        await commit(
            client,
            admins["mee"].build("allocate", {"period": "gov-1", "org": "ent-b", "amount_t": 20_000}),
            admins["ent-b"].build("enrol_key", {"public_key": second.public_key.hex()}),
        )
        [waiting] = await commit(
            client, admins["ent-b"].build("transfer_allowances", {"to": "ent-c", "amount_t": 15_000})
        )
        request = int(event(waiting, "request_created")["request"])
        holdings = await client.holdings("ent-b")
        assert holdings["allowances_t"] == {"available": 5_000, "locked": 15_000}
        assert (await client.holdings("ent-c"))["allowances_t"]["available"] == 0
        client_signer = await client.signer(org="ent-b", key=second)
        [approved] = await commit(client, client_signer.build("approve_request", {"request": request}))
        assert [e["type"] for e in approved["events"]] == ["request_approved", "allowances_transferred"]
        assert (await client.holdings("ent-c"))["allowances_t"]["available"] == 15_000
        assert (await client.holdings("ent-b"))["allowances_t"] == {"available": 5_000, "locked": 0}


async def test_the_evidence_of_an_equivocation_ends_on_chain(cluster: Cluster) -> None:
    equivocator = dev_node_key("validator", 3).public_key.hex()
    async with CarbonClient(cluster.api_url("validator-1")) as client:
        await wait_until(client.is_ready, timeout_s=60, what="validator-1 ready")
        signer = await client.signer(org="bank", key=dev_admin_key("bank"))  # a block to vote on, at least
        await commit(
            client, signer.build("deposit_cash", {"org": "ent-a", "amount_fen": 1, "bank_ref": "ev"})
        )

        async def recorded() -> list[dict[str, Any]]:
            return list((await client.query("evidence", validator=equivocator))["items"])

        [evidence] = await wait_until(recorded, timeout_s=30, what="evidence on chain")
    assert (evidence["kind"], evidence["org"]) == ("prepare", cluster.genesis.validators[3].org)
    assert evidence["block_hash_1"] != evidence["block_hash_2"]
    reporters = {v.node_key: v.org for v in cluster.genesis.validators[:3]}
    assert evidence["reporter_key"] in reporters  # a validator that saw it, with its node key
    assert evidence["reporter"] == reporters[evidence["reporter_key"]]


async def test_a_fifth_validator_comes_into_force_after_its_activation_height(cluster: Cluster) -> None:
    genesis = cluster.genesis
    new_key = dev_node_key("validator", 4)
    proof = new_key.sign(compute_node_key_proof_digest(genesis.chain_id, "mee", new_key.public_key, None))
    add = {"org": "mee", "node_key": new_key.public_key.hex(), "peer_address": "127.0.0.1:1",
           "api_address": "127.0.0.1:2", "proof": proof.hex()}  # fmt: skip
    async with (
        CarbonClient(cluster.api_url("validator-2")) as client,
        CarbonClient(cluster.api_url("observer-0")) as observer,
    ):
        await wait_until(client.is_ready, timeout_s=60, what="validator-2 ready")
        admins = {
            org: await client.signer(org=org, key=dev_admin_key(org)) for org in ("mee", "bank", "ent-a")
        }
        status = await client.status()
        [created] = await commit(client, admins["mee"].build("propose", {
            "action": "add_validator", "args": add, "expires_height": status["height"] + 500}))  # fmt: skip
        proposal = int(event(created, "proposal_created")["proposal"])
        await commit(client, admins["bank"].build("approve", {"proposal": proposal}))
        [third] = await commit(client, admins["ent-a"].build("approve", {"proposal": proposal}))  # 3 of 4
        approved = event(third, "validator_change_approved")
        pending = await client.query("validators")
        height = pending["pending"]["approved_height"]
        last = compute_activation_height(height, checkpoint_interval=10, pipeline_depth=2)
        assert (approved["number"], approved["activation_height"]) == (4, last)
        assert len(pending["validators"]) == 4 and pending["pending"]["activation_height"] == last
        # transactions until the chain is past L: the old set certifies up to L, the five from L + 1
        signer = await client.signer(org="bank", key=dev_admin_key("bank"))
        for ref in count():
            if (await client.status())["height"] > last + 1:
                break
            deposit = {"org": "ent-a", "amount_fen": 1, "bank_ref": f"valset-{ref}"}
            await commit(client, signer.build("deposit_cash", deposit))
        five = ValidatorSet((*genesis.validator_set.members, (4, new_key.public_key)))
        for node in (client, observer):
            view = await node.query("validators")
            assert [(v["number"], v["node_key"]) for v in view["validators"]] == [
                (number, key.hex()) for number, key in five.members]  # fmt: skip
            assert (view["epoch"], view["first_height"], view["pending"]) == (1, last + 1, None)
            assert [(e["first_height"], e["last_height"]) for e in view["history"]] == [
                (1, last),
                (last + 1, None),
            ]
            assert len((await node.query("validators", height=last))["validators"]) == 4
        headers = [(await client.block(h))["header"] for h in (last, last + 1)]
        assert headers[0]["validators_hash"] == genesis.validator_set.set_hash.hex()
        assert headers[0]["next_validators_hash"] == five.set_hash.hex()
        assert headers[1]["validators_hash"] == five.set_hash.hex()
        # the observer verified block L + 1 against the five, and follows
        await wait_until(
            lambda: _height_at_least(observer, last + 1), timeout_s=30, what="the observer past L"
        )


async def _height_at_least(client: CarbonClient, height: int) -> bool:
    return bool((await client.status())["height"] >= height)


def test_the_gov_commands_and_audit_verify(cluster: Cluster, tmp_path: Path) -> None:
    """The CLI: propose, approve, reject, list, show (exit 0 on ok, 1 with a one-line error otherwise);
    then `audit verify` re-executes the whole chain, governance included, from genesis."""
    node = cluster.api_url("validator-1")
    keys = {}
    for org in ("mee", "bank", "ent-a", "ent-b"):
        keys[org] = tmp_path / f"{org}.json"
        save_key(keys[org], dev_admin_key(org), label=org)
    runner = CliRunner(env={"CARBONCHAIN_NODE": node})

    def gov(org: str, *args: str) -> Any:
        return runner.invoke(main, ["gov", *args, "--key", str(keys[org]), "--as", org, "--wait", "--json"])

    proposed = gov("mee", "propose", "set-parameter", "--name", "penalty_fen_per_t", "--value", "20000")
    assert proposed.exit_code == 0, proposed.output
    number = next(
        e["proposal"] for e in json.loads(proposed.output)["events"] if e["type"] == "proposal_created"
    )
    refused = gov("ent-b", "approve", str(number))  # ent-b is no member
    assert refused.exit_code == 1 and json.loads(refused.output)["code"] == "not_eligible"
    assert gov("ent-a", "reject", str(number)).exit_code == 0
    assert gov("bank", "approve", str(number)).exit_code == 0
    shown = runner.invoke(main, ["gov", "show", str(number)])
    assert shown.exit_code == 0 and "open" in shown.output  # 2 approvals, 1 rejection: 3 needed
    listed = runner.invoke(main, ["gov", "list", "--status", "executed"])
    assert listed.exit_code == 0 and "set_parameter" in listed.output
    evidence = runner.invoke(main, ["query", "evidence", "--json"])
    [recorded] = json.loads(evidence.output)["items"]  # the equivocation, recorded once
    assert recorded["validator"] == dev_node_key("validator", 3).public_key.hex()
    bad = runner.invoke(main, ["gov", "propose", "set-parameter", "--name", "offset_cap_bps", "--value", "x",
                               "--key", str(keys["mee"]), "--as", "mee"])  # fmt: skip
    assert bad.exit_code == 1 and bad.output.startswith("error: set_parameter: argument 'value'")
    assert bad.output.count("\n") == 1  # one line, no traceback
    genesis = cluster.homes["validator-0"] / "genesis.json"
    done = runner.invoke(
        main, ["audit", "verify", "--node", cluster.api_url("validator-2"), "--genesis", str(genesis)]
    )
    assert done.exit_code == 0, done.output
    assert "VERDICT: OK" in done.output
