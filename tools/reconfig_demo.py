"""Reconfiguration, demonstrated on a running devnet: while deposits flow, governance grows the validator
set from 4 to 5 and then removes the new validator again, every step through the commands a consortium uses.

    make devnet                                   # in one terminal (or: carbonchain devnet --demo)
    .venv/bin/python -m tools.reconfig_demo       # in another: --devnet .devnet --node http://127.0.0.1:7200

1. the new member makes its keys on "its own machine" (`carbonchain member init --validator ...`);
2. a member proposes `add_validator` with the new key's proof of possession, the others approve until the
   genesis `validators` policy (2/3 of the members) is met; the change is in force after its activation
   height L (docs/protocol/consensus.md, "Reconfiguration");
3. `carbonchain node join` makes the new validator's home from a node of the network, and it starts: it
   catches up by state transfer and takes part from L + 1 (the demo waits until it follows the tip in the
   current view; tests/integration/test_validator_changes.py shows that its votes then make the quorum);
4. `remove_validator` takes it out again at a later activation height; the process is stopped after it;
5. every deposit acknowledged meanwhile is committed.
tests/integration/test_validator_changes.py runs the same steps (and more) on a test network.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client import ApiError, CarbonClient, Signer
from core.devkeys import dev_admin_key
from core.genesis import Genesis, load_genesis
from core.keystore import load_key
from core.votes import compute_node_key_proof_digest
from tools.bench.network import find_free_port_base
from tools.devnet import die_with_parent

REPO = Path(__file__).resolve().parents[1]
WAIT_S = 180.0  # for one step: catching up, reaching an activation height


class DemoFailed(Exception):
    pass


class Load:
    """Deposits (1 fen each) in batches of 5 every 0.2 s while it runs; remembers every acknowledged id."""

    def __init__(self, client: CarbonClient) -> None:
        self.client = client
        self.acknowledged: list[str] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        batch = 0
        while not self._stop.is_set():
            signer = await self.client.signer(org="bank", key=dev_admin_key("bank"))
            for ref in range(5):
                args = {"org": "ent-a", "amount_fen": 1, "bank_ref": f"load-{id(self)}-{batch}-{ref}"}
                with contextlib.suppress(Exception):  # a busy or briefly unready node: the next batch retries
                    self.acknowledged.append(await self.client.submit(signer.build("deposit_cash", args)))
            batch += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=0.2)

    def stop(self) -> None:
        self._stop.set()


@contextlib.asynccontextmanager
async def load_on(client: CarbonClient) -> AsyncIterator[Load]:
    load = Load(client)
    task = asyncio.create_task(load.run())
    try:
        yield load
    finally:
        load.stop()
        await task


async def commit_all(client: CarbonClient, *txs: Any) -> list[dict[str, Any]]:
    """Submit, wait for every commit, and return the results; each must be ok."""
    ids = [await client.submit(tx) for tx in txs]
    statuses = await client.wait_for_commits(ids, timeout_s=60)
    results = []
    for tx_id in ids:
        if not statuses[tx_id].is_ok:
            raise DemoFailed(f"{statuses[tx_id].code}: {statuses[tx_id].message}")
        results.append(await client.tx_result(statuses[tx_id]))
    return results


def find_event(result: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((e for e in result["events"] if e["type"] == kind), None)


async def govern(client: CarbonClient, genesis: Genesis, action: str, args: dict[str, Any]) -> dict[str, Any]:
    """Propose `action` as the first member and approve as the next ones until the change is approved;
    returns the `validator_change_approved` event (its number and activation height)."""
    members = list(genesis.members)
    signers: dict[str, Signer] = {
        org: await client.signer(org=org, key=dev_admin_key(org)) for org in members
    }
    height = (await client.status())["height"]
    proposal_args = {"action": action, "args": args, "expires_height": height + 500}
    [created] = await commit_all(client, signers[members[0]].build("propose", proposal_args))
    approved = find_event(created, "validator_change_approved")
    created_event = find_event(created, "proposal_created")
    if created_event is None:
        raise DemoFailed(f"the {action} proposal was not created")
    for org in members[1:]:
        if approved is not None:
            break
        [result] = await commit_all(
            client, signers[org].build("approve", {"proposal": created_event["proposal"]})
        )
        approved = find_event(result, "validator_change_approved")
    if approved is None:
        raise DemoFailed(f"the {action} proposal was not approved by all the members")
    return approved


async def height_of(url: str) -> int:
    async with CarbonClient(url) as client:
        return int((await client.status())["height"])


async def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll (the only event a separate process offers) until `predicate()` is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        with contextlib.suppress(Exception):
            if await predicate():
                return
        if loop.time() > deadline:
            raise DemoFailed(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


def cli(*args: str) -> str:
    """Run a carbonchain command as a user would; its output, or DemoFailed with it."""
    done = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise DemoFailed(f"carbonchain {args[0]} {args[1]} failed: {done.stdout}{done.stderr}")
    return done.stdout


@dataclass
class Outcome:
    number: int  # the new validator's number
    joined_from: int  # its first height in the set
    left_after: int  # the last height it certified
    signed: list[int] = field(default_factory=list)  # heights whose certificates carry its signature
    acknowledged: int = 0  # deposits acknowledged during the demo (all committed)


async def grow_and_shrink(
    node_url: str, genesis_path: Path, work: Path, say: Callable[[str], None] = print
) -> Outcome:
    """The demonstration (the module's steps); `work` receives the new member's folder and node home."""
    genesis = load_genesis(genesis_path)
    base = find_free_port_base(1)
    peer, api = f"127.0.0.1:{base}", f"127.0.0.1:{base + 100}"
    folder, home = work / "new-member", work / "new-validator"
    say(f"$ carbonchain member init --dir {folder} --org mee ... --validator {peer} {api}")
    cli("member", "init", "--dir", str(folder), "--org", "mee", "--name", "Ministry, second site",
        "--role", "regulator", "--validator", peer, api, "--no-encrypt")  # fmt: skip
    key = load_key(folder / "keys" / "node-0.json")
    proof = key.sign(compute_node_key_proof_digest(genesis.chain_id, "mee", key.public_key, None))
    process: subprocess.Popen[bytes] | None = None
    async with CarbonClient(node_url) as client, load_on(client) as load:
        try:
            args = {"org": "mee", "node_key": key.public_key.hex(), "peer_address": peer, "api_address": api,
                    "proof": proof.hex()}  # fmt: skip
            added = await govern(client, genesis, "add_validator", args)
            number, last = int(added["number"]), int(added["activation_height"])
            say(f"add_validator approved: validator {number}, in force from height {last + 1}")
            say(f"$ carbonchain node join --genesis {genesis_path} --member-dir {folder} --home {home}")
            say(cli("node", "join", "--genesis", str(genesis_path), "--member-dir", str(folder), "--home",
                    str(home), "--node", node_url).rstrip())  # fmt: skip
            process = _start(home)
            url = f"http://{api}"
            await wait_for(lambda: is_past(url, last + 2), f"validator {number} past height {last + 2}")
            await wait_for(
                lambda: _in_step(url, node_url), f"validator {number} at the tip, in the current view"
            )
            signed = await _signed_by(client, number, last + 1)
            say(
                f"validator {number} caught up and follows the tip in the current view; a certificate holds the "
                f"first quorum of COMMITs to arrive, and {len(signed)} of them since height {last + 1} hold its own"
            )
            removed = await govern(client, genesis, "remove_validator", {"node_key": key.public_key.hex()})
            left = int(removed["activation_height"])
            say(f"remove_validator approved: validator {number} certifies up to height {left}")
            await wait_for(lambda: is_past(node_url, left + 2), f"the network past height {left + 2}")
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    statuses = await _wait_committed(node_url, load.acknowledged)
    say(f"{statuses} deposits acknowledged during the demo, every one committed")
    return Outcome(number, last + 1, left, signed, statuses)


def _start(home: Path) -> subprocess.Popen[bytes]:
    log = (home / "node.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", "node", "run", "--home", str(home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            preexec_fn=die_with_parent,
        )
    finally:
        log.close()


async def is_past(url: str, height: int) -> bool:
    """The node at `url` is above `height` (False while it does not answer: starting, or down)."""
    with contextlib.suppress(ApiError):
        return await height_of(url) > height
    return False


async def _in_step(url: str, reference_url: str) -> bool:
    """The node at `url` is within 2 heights of the reference node and in its view."""
    async with CarbonClient(url) as node, CarbonClient(reference_url) as reference:
        ours, theirs = await node.status(), await reference.status()
    return bool(ours["view"] == theirs["view"] and int(ours["height"]) >= int(theirs["height"]) - 2)


async def _signed_by(client: CarbonClient, number: int, first: int) -> list[int]:
    """The heights from `first` whose certificate (as the node at `client` holds it) carries `number`'s vote."""
    tip = int((await client.status())["height"])
    heights = []
    for height in range(first, tip + 1):
        block = await client.block(height)
        if any(vote["validator"] == number for vote in block["certificate"]["votes"]):
            heights.append(height)
    return heights


async def _wait_committed(node_url: str, tx_ids: list[str]) -> int:
    async with CarbonClient(node_url) as client:
        statuses = await client.wait_for_commits(tx_ids, timeout_s=120)
    if not all(status.is_committed for status in statuses.values()):
        raise DemoFailed("an acknowledged deposit was not committed")
    return len(statuses)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--devnet", type=Path, default=Path(".devnet"), help="the devnet's folder (make devnet)"
    )
    parser.add_argument("--node", default="http://127.0.0.1:7200", help="API URL of a node of the devnet")
    options = parser.parse_args()
    genesis_path = options.devnet / "validator-0" / "genesis.json"
    work = options.devnet / "reconfiguration-demo"
    if work.exists():
        print(f"{work} exists: the demo ran before; remove it (or reset the devnet) to run it again")
        return 2
    work.mkdir(parents=True)
    try:
        outcome = asyncio.run(grow_and_shrink(options.node, genesis_path, work))
    except DemoFailed as exc:
        print(f"demo failed: {exc}")
        return 1
    print(json.dumps({"number": outcome.number, "joined_from": outcome.joined_from, "left_after": outcome.left_after,
                      "acknowledged": outcome.acknowledged}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
