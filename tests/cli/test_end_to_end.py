"""End to end against a real four-validator network (OS processes, sockets on 127.0.0.1, LevelDB).

1. docs/TUTORIAL.md's bash blocks run in order (with the period's deadlines shortened) and produce the
   expected compliance report, receipt and proofs.
2. `audit verify` passes on the honest network, and fails, naming the height and the check, for each lie a
   node can tell: a tampered block, a forged certificate, a removed or reordered transaction (served as is, or
   re-certified by a colluding quorum), a wrong certified state root, lying results, a wrong final state.
   The lies are served by a fake node (tests/cli/fakenode.py) built from the real network's blocks.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli import main
from client import CarbonClient
from core.block import Block, compute_tx_root
from core.devkeys import dev_admin_key
from core.tx import transaction_to_json
from tests.cli.fakenode import (
    FakeNode,
    alter_args,
    decode_chain,
    encode_chain,
    recertify_from,
    with_txs,
)
from tests.integration.cluster import REPO, Cluster

pytestmark = pytest.mark.timeout(600)

# The tutorial's deadlines are minutes; here about a minute, and instead of sleeping a fixed time the script
# waits until the surrender deadline has passed, so a slow (loaded) machine cannot miss a deadline or
# settle too early.
WAIT_FOR_SURRENDER_DEADLINE = (
    "DEADLINE_MS=$(carbonchain query period --period 2026 --json"
    " | python -c 'import json, sys; print(json.load(sys.stdin)[\"surrender_deadline_ms\"])')\n"
    'python -c "import time; time.sleep(max(0.0, $DEADLINE_MS / 1000 - time.time() + 1))"'
)
FAST = {
    "export CARBONCHAIN_NODE=http://127.0.0.1:7200": "export CARBONCHAIN_NODE={node}",
    "REPORTING=+3m": "REPORTING=+75s",
    "SURRENDER=+4m": "SURRENDER=+90s",
    "sleep 240": WAIT_FOR_SURRENDER_DEADLINE,
}
EXPECTED_COMPLIANCE = [
    {"org": "power-1", "allocated_t": "2000", "verified_t": "1500", "surrendered_allowances_t": "1600",
     "surrendered_offsets_t": "0", "shortfall_t": "0", "surplus_t": "100", "penalty_fen": "0", "status": "surplus"},
    {"org": "steel-1", "allocated_t": "713", "verified_t": "900", "surrendered_allowances_t": "813",
     "surrendered_offsets_t": "45", "shortfall_t": "42", "surplus_t": "0", "penalty_fen": "420000",
     "status": "shortfall"},
]  # fmt: skip


def tutorial_script(node: str) -> str:
    text = (REPO / "docs" / "TUTORIAL.md").read_text(encoding="utf-8")
    script = "\n".join(re.findall(r"```bash\n(.*?)```", text, flags=re.S))
    for old, new in FAST.items():
        assert old in script, f"the tutorial no longer contains {old!r}"
        script = script.replace(old, new.format(node=node))
    return "set -euo pipefail\n" + script


def wait_ready(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} not ready within {timeout_s} s")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cli-net")
    network = Cluster(root, observers=0)
    try:
        network.start()
        for name in network.names:
            wait_ready(network.api_url(name))
        yield network
    except BaseException:
        for name in network.names:
            print(f"----- {name} log tail -----\n{network.log_tail(name)}")
        raise
    finally:
        network.close()


@pytest.fixture(scope="module")
def tutorial(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the tutorial once; returns its working directory (tutorial/ holds its outputs)."""
    work = tmp_path_factory.mktemp("tutorial")
    shutil.copy(cluster.homes["validator-0"] / "genesis.json", work / "genesis.json")
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}
    env.pop("CARBONCHAIN_PASSPHRASE", None)
    done = subprocess.run(
        ["bash", "-c", tutorial_script(cluster.api_url("validator-0"))],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert done.returncode == 0, (
        f"tutorial failed\n--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )
    (work / "tutorial" / "stdout.txt").write_text(done.stdout)
    return work


@pytest.fixture(scope="module")
def served(cluster: Cluster, tutorial: Path) -> tuple[dict[int, bytes], dict[str, Any]]:
    """The real chain's block bytes and status, after a batch that puts several transactions into one block."""

    async def fetch() -> tuple[dict[int, bytes], dict[str, Any]]:
        async with CarbonClient(cluster.api_url("validator-1")) as client:
            signer = await client.signer(org="bank", key=dev_admin_key("bank"))
            txs = [
                signer.build(
                    "deposit_cash", {"org": "ent-a", "amount_fen": 100 + i, "bank_ref": f"BATCH-{i}"}
                )
                for i in range(12)
            ]
            await client.wait_for_commits([await client.submit(tx) for tx in txs], timeout_s=60)
            status = await client.status()
            blocks = {h: await client.block_bytes(h) for h in range(1, status["height"] + 1)}
            return blocks, status

    return asyncio.run(fetch())


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# --- the tutorial -------------------------------------------------------------------------------------------


def test_tutorial_commands_produce_the_expected_compliance_report(tutorial: Path) -> None:
    out = tutorial / "tutorial"
    with (out / "compliance-2026.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [{k: row[k] for k in EXPECTED_COMPLIANCE[0]} for row in rows] == EXPECTED_COMPLIANCE
    stdout = (out / "stdout.txt").read_text()
    assert "steel-1          713         900           813             45           42" in stdout
    assert "VERDICT: OK" in stdout  # audit verify, audit proof and audit receipt inside the tutorial
    receipt = json.loads((out / "receipt.json").read_text())
    assert receipt["receipt"]["beneficiary"] == "Shanghai Marathon 2026"
    assert receipt["receipt"]["quantity_t"] == 10
    assert "VERDICT: OK" in (out / "proof.txt").read_text()


def test_a_doctored_receipt_fails_offline_verification(tutorial: Path) -> None:
    document = json.loads((tutorial / "tutorial" / "receipt.json").read_text())
    document["receipt"]["quantity_t"] = 1000
    forged = tutorial / "forged-receipt.json"
    forged.write_text(json.dumps(document))
    result = CliRunner().invoke(
        main, ["audit", "receipt", str(forged), "--genesis", str(tutorial / "genesis.json")]
    )
    assert result.exit_code == 1
    assert "differs from the receipt the state proves" in result.output


def test_tx_exit_codes_and_one_line_errors(cluster: Cluster, tutorial: Path) -> None:
    keys = tutorial / "tutorial" / "keys"
    node = cluster.api_url("validator-2")
    failed = cli("tx", "allocate", "--as", "mee", "--key", str(keys / "mee.json"), "--node", node, "--wait",
                 "--period", "2026", "--org", "power-1", "--amount-t", "5")  # fmt: skip
    assert (
        failed.exit_code == 1 and "committed but FAILED" in failed.output and "period_closed" in failed.output
    )
    rejected = CliRunner().invoke(
        main, ["tx", "deposit_cash", "--as", "bank", "--key", str(keys / "mee.json"), "--node", node,
               "--org", "ent-a", "--amount-fen", "5", "--bank-ref", "X-1"],
    )  # fmt: skip
    assert rejected.exit_code == 1
    assert rejected.output.count("\n") == 1 and "unknown_sender" in rejected.output
    assert "an admin of bank enrols this key first: carbonchain tx enrol_key --as bank" in rejected.output
    ok = cli("tx", "deposit_cash", "--as", "bank", "--key", str(keys / "bank.json"), "--node", node, "--json",
             "--wait", "--org", "ent-a", "--amount-fen", "5", "--bank-ref", "X-2")  # fmt: skip
    assert ok.exit_code == 0 and json.loads(ok.output)["code"] == "ok"


def test_audit_history_lists_every_version_with_its_signer(cluster: Cluster, tutorial: Path) -> None:
    result = cli(
        "audit", "history", "bal/steel-1/allowance", "--node", cluster.api_url("validator-3"), "--json"
    )
    versions = json.loads(result.output)["versions"]
    assert [v["signer"]["function"] for v in versions] == [
        "allocate", "allocate", "place_order", "surrender_allowances",
    ]  # fmt: skip
    assert all(len(v["tx_id"]) == 64 and v["height"] >= 1 for v in versions)
    assert all(v["time_ms"] > 1_700_000_000_000 for v in versions)  # block times, in ms since the epoch
    table = cli("audit", "history", "bal/steel-1/allowance", "--node", cluster.api_url("validator-3"))
    header, _, first = table.output.splitlines()[1:4]
    assert header.split()[:4] == ["height", "time", "(UTC)", "tx"]
    assert re.match(r"^\s*\d+  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", first), first


# --- status, block, tx show, keys list (issue 18 problem 6) ----------------------------------------------------


def test_status_block_and_tx_show(cluster: Cluster, tutorial: Path) -> None:
    node = cluster.api_url("validator-1")
    status = cli("status", "--node", node)
    assert status.exit_code == 0, status.output
    assert "validator-1 (validator) on chain itest-devnet" in status.output and "ready: yes" in status.output
    assert "checkpoint: height" in status.output and "consensus log records kept" in status.output
    document = json.loads(cli("status", "--node", node, "--json").output)
    assert document["ready"] == {"ready": True, "reason": None} and document["status"]["height"] >= 10

    latest = cli("block", "latest", "--node", node)
    assert latest.exit_code == 0 and latest.output.startswith(f"block {document['status']['height']}  ")
    assert "certificate:  view" in latest.output and "proposer:     validator-" in latest.output
    missing = CliRunner().invoke(main, ["block", "99999", "--node", node])
    assert missing.exit_code == 1 and "no block 99999: the chain is at height" in missing.output
    assert CliRunner().invoke(main, ["block", "zero", "--node", node]).exit_code == 2

    receipt = (tutorial / "tutorial" / "stdout.txt").read_text().split("receipt ", 1)[1].split()[0]
    shown = cli("tx", "show", receipt, "--node", node)
    assert shown.exit_code == 0, shown.output
    assert f"tx {receipt}: committed at height" in shown.output and ": ok" in shown.output.splitlines()[0]
    assert (
        "function:   retire_offsets" in shown.output
        and "arg beneficiary: Shanghai Marathon 2026" in shown.output
    )
    assert "event offsets_retired:" in shown.output
    keys = tutorial / "tutorial" / "keys"
    failed = CliRunner().invoke(
        main, ["tx", "allocate", "--as", "mee", "--key", str(keys / "mee.json"), "--node", node, "--json",
               "--wait", "--period", "2026", "--org", "steel-1", "--amount-t", "1"],
    )  # fmt: skip
    assert failed.exit_code == 1
    failed_id = json.loads(failed.output)["tx_id"]
    shown = CliRunner().invoke(main, ["tx", "show", failed_id, "--node", node])
    assert shown.exit_code == 1 and "FAILED: period_closed" in shown.output
    as_json = CliRunner().invoke(main, ["tx", "show", failed_id, "--node", node, "--json"])
    assert as_json.exit_code == 1 and json.loads(as_json.output)["code"] == "period_closed"
    unknown = CliRunner().invoke(main, ["tx", "show", "ab" * 32, "--node", node])
    assert unknown.exit_code == 1 and "unknown to this node" in unknown.output


def test_keys_list_shows_files_and_their_enrolment(cluster: Cluster, tutorial: Path) -> None:
    keys = tutorial / "tutorial" / "keys"
    listed = cli(
        "keys", "list", str(keys), "--org", "steel-1", "--node", cluster.api_url("validator-0"), "--json"
    )
    status = {Path(k["file"]).name: k["on_chain"] for k in json.loads(listed.output)}
    assert status["steel-1.json"] == "admin, active" and status["steel-1-client.json"] == "client, active"
    assert status["power-1.json"] == "not enrolled for steel-1"
    table = cli("keys", "list", str(keys))
    line = next(line for line in table.output.splitlines() if "steel-1-client.json" in line)
    assert "steel-1 client" in line and " yes " in line and "0600" in line


def test_submit_file_signs_sends_in_batches_and_reports_each_line(cluster: Cluster, tutorial: Path) -> None:
    keys = tutorial / "tutorial" / "keys"
    node = cluster.api_url("validator-2")
    # 150 deposits to sign here (two requests), one already signed elsewhere, one that fails on chain
    lines = [json.dumps({"function": "deposit_cash", "args": {"org": "ent-a", "amount_fen": 1, "bank_ref": f"F-{i}"}})
             for i in range(150)]  # fmt: skip

    async def presign() -> str:
        async with CarbonClient(node) as client:
            signer = await client.signer(org="bank", key=dev_admin_key("bank"))
            tx = signer.build("deposit_cash", {"org": "ent-a", "amount_fen": 7, "bank_ref": "F-signed"})
            return json.dumps(transaction_to_json(tx))

    lines += ["# a comment", "", asyncio.run(presign())]
    lines.append(
        json.dumps(
            {"function": "withdraw_cash", "args": {"org": "ent-a", "amount_fen": 10**15, "bank_ref": "F-out"}}
        )
    )
    batch = tutorial / "batch.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    sent = CliRunner().invoke(main, ["tx", "submit-file", str(batch), "--as", "bank", "--key",
                                     str(keys / "bank.json"), "--node", node, "--wait", "--json"])  # fmt: skip
    assert sent.exit_code == 1, sent.output  # the withdrawal fails on chain
    results = json.loads(sent.output)["results"]
    assert [r["line"] for r in results] == [*range(1, 151), 153, 154]
    assert all(r["status"] == "committed" for r in results)
    assert [r["code"] for r in results[:-1]] == ["ok"] * 151 and results[-1]["code"] != "ok"
    text = cli("tx", "show", results[150]["tx_id"], "--node", node).output
    assert "arg bank_ref: F-signed" in text

    bad = tutorial / "bad.jsonl"
    bad.write_text(
        lines[0] + "\n" + json.dumps({"function": "deposit_cash", "args": {"org": "ent-a"}}) + "\n"
    )
    refused = CliRunner().invoke(main, ["tx", "submit-file", str(bad), "--as", "bank", "--key",
                                        str(keys / "bank.json"), "--node", node])  # fmt: skip
    assert refused.exit_code == 1 and refused.output.count("\n") == 1
    assert f"{bad}:2: " in refused.output and "amount_fen" in refused.output
    float_line = tutorial / "float.jsonl"
    float_line.write_text(
        '{"function": "deposit_cash", "args": {"org": "ent-a", "amount_fen": 1.5, "bank_ref": "x"}}\n'
    )
    refused = CliRunner().invoke(main, ["tx", "submit-file", str(float_line), "--node", node])
    assert refused.exit_code == 1 and f"{float_line}:1: not JSON: 1.5 is not an integer" in refused.output


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_state_keys_with_slashes_work_in_urls_as_written_and_encoded(
    cluster: Cluster, tutorial: Path
) -> None:
    url = cluster.api_url("validator-1")
    plain = _get_json(url + "/v1/state/bal/steel-1/allowance/history")
    encoded = _get_json(url + "/v1/state/bal%2Fsteel-1%2Fallowance/history")
    assert plain == encoded and plain["key"] == "bal/steel-1/allowance" and len(plain["versions"]) == 4
    proof = _get_json(url + "/v1/state/bal/steel-1/allowance/proof")
    assert proof["key"] == "bal/steel-1/allowance" and proof["value"]["available"] >= 0
    # an index entry's value is the empty map (docs/API.md, "Values")
    block = _get_json(url + "/v1/carbon/holdings?org=dev-a")["offset_blocks"][0]
    history = _get_json(url + f"/v1/state/holding/dev-a/{block['last']:020d}/history")
    assert history["versions"][-1]["value"] == {} and not history["versions"][-1]["deleted"]


# --- audit verify ---------------------------------------------------------------------------------------------


def verify(url: str, genesis: Path) -> Result:
    return CliRunner().invoke(main, ["audit", "verify", "--node", url, "--genesis", str(genesis), "--quiet"])


def test_audit_verify_passes_on_the_honest_network(cluster: Cluster, tutorial: Path, served: Any) -> None:
    result = verify(cluster.api_url("validator-0"), tutorial / "genesis.json")
    assert result.exit_code == 0, result.output
    assert "VERDICT: OK" in result.output and "matches the node's state root" in result.output


def test_audit_verify_passes_on_the_faithful_copy(tutorial: Path, served: Any) -> None:
    blocks, status = served
    with FakeNode(blocks, status) as fake:
        result = verify(fake.url, tutorial / "genesis.json")
    assert result.exit_code == 0, result.output


def _busy_height(blocks: dict[int, bytes]) -> int:
    chain = decode_chain(blocks)
    return max(chain, key=lambda h: (len(chain[h].block.txs), -h))


def _deposit_height(blocks: dict[int, bytes]) -> int:
    chain = decode_chain(blocks)
    return min(h for h, b in chain.items() if any(tx.body.function == "deposit_cash" for tx in b.block.txs))


def tamper_altered_amount(blocks: dict[int, bytes], validators: int) -> tuple[dict[int, bytes], int, str]:
    chain = decode_chain(blocks)
    height = _deposit_height(blocks)
    txs = list(chain[height].block.txs)
    index = next(i for i, tx in enumerate(txs) if tx.body.function == "deposit_cash")
    txs[index] = alter_args(txs[index], amount_fen=10**12)
    chain[height] = with_txs(chain[height], tuple(txs))
    return encode_chain(chain), height, "transaction root"


def tamper_forged_certificate(blocks: dict[int, bytes], validators: int) -> tuple[dict[int, bytes], int, str]:
    chain = decode_chain(blocks)
    height = 3
    certificate = chain[height].certificate
    index, signature = certificate.votes[0]
    forged = ((index, bytes([signature[0] ^ 1]) + signature[1:]), *certificate.votes[1:])
    chain[height] = dataclasses.replace(
        chain[height], certificate=dataclasses.replace(certificate, votes=forged)
    )
    return encode_chain(chain), height, "commit certificate"


def tamper_removed_tx(blocks: dict[int, bytes], validators: int) -> tuple[dict[int, bytes], int, str]:
    chain = decode_chain(blocks)
    height = _busy_height(blocks)
    certified = chain[height]
    chain[height] = with_txs(certified, certified.block.txs[1:], certified.results[1:])
    return encode_chain(chain), height, "transaction count"


def tamper_reordered_txs(blocks: dict[int, bytes], validators: int) -> tuple[dict[int, bytes], int, str]:
    chain = decode_chain(blocks)
    height = _busy_height(blocks)
    certified = chain[height]
    txs = certified.block.txs
    assert len(txs) >= 2
    chain[height] = with_txs(
        certified,
        (txs[1], txs[0], *txs[2:]),
        (certified.results[1], certified.results[0], *certified.results[2:]),
    )
    return encode_chain(chain), height, "transaction root"


def tamper_removed_tx_recertified(
    blocks: dict[int, bytes], validators: int
) -> tuple[dict[int, bytes], int, str]:
    """A colluding quorum drops a deposit and re-signs history: only re-execution notices (state root)."""
    chain = decode_chain(blocks)
    height = _deposit_height(blocks)
    certified = chain[height]
    keep = [i for i, tx in enumerate(certified.block.txs) if tx.body.function != "deposit_cash"]
    drop = len(certified.block.txs) - len(keep)
    txs = tuple(certified.block.txs[i] for i in keep)
    header = dataclasses.replace(certified.block.header, tx_count=len(txs), tx_root=compute_tx_root(txs))
    chain[height] = dataclasses.replace(
        certified, block=Block(header, txs), results=tuple(certified.results[i] for i in keep)
    )
    assert drop >= 1
    depth = 2  # FAST_CONSENSUS pipeline_depth: the header 2 blocks later certifies the roots
    return encode_chain(recertify_from(chain, height, validators)), height + depth, "state root"


def tamper_wrong_state_root(blocks: dict[int, bytes], validators: int) -> tuple[dict[int, bytes], int, str]:
    chain = decode_chain(blocks)
    height = 6
    certified = chain[height]
    header = dataclasses.replace(certified.block.header, state_root=bytes(32))
    chain[height] = dataclasses.replace(certified, block=Block(header, certified.block.txs))
    return encode_chain(recertify_from(chain, height, validators)), height, "state root"


def tamper_lying_results(blocks: dict[int, bytes], validators: int) -> tuple[dict[int, bytes], int, str]:
    chain = decode_chain(blocks)
    height = _deposit_height(blocks)
    certified = chain[height]
    results = list(certified.results)
    results[0] = dataclasses.replace(results[0], code="forbidden", message="made up", events=())
    chain[height] = dataclasses.replace(certified, results=tuple(results))
    return encode_chain(chain), height, "transaction result"


@pytest.mark.parametrize(
    "tamper",
    [
        tamper_altered_amount,
        tamper_forged_certificate,
        tamper_removed_tx,
        tamper_reordered_txs,
        tamper_removed_tx_recertified,
        tamper_wrong_state_root,
        tamper_lying_results,
    ],
)
def test_audit_verify_names_the_height_and_check_of_each_lie(
    tutorial: Path, served: Any, tamper: Any
) -> None:
    blocks, status = served
    doctored, height, check = tamper(blocks, validators=4)
    with FakeNode(doctored, status) as fake:
        result = verify(fake.url, tutorial / "genesis.json")
    assert result.exit_code == 1, result.output
    assert f"VERDICT: FAILED at height {height}: {check}:" in result.output, result.output


def test_audit_verify_fails_on_a_wrong_final_state_root(tutorial: Path, served: Any) -> None:
    blocks, status = served
    with FakeNode(blocks, {**status, "state_root": "00" * 32}) as fake:
        result = verify(fake.url, tutorial / "genesis.json")
    assert result.exit_code == 1
    assert f"VERDICT: FAILED at height {status['height']}: final state root:" in result.output
