"""A scripted compliance year against a running devnet, through the client: `carbonchain devnet --demo`.

The same story as docs/TUTORIAL.md, run in half a minute with the devnet's well-known keys:
enrolment of every organisation's client key, bank deposits, an offset project with a buffered issuance,
an OTC offset sale and a voluntary retirement, a compliance period with short deadlines, allocation (one
explicit, one benchmark x output x 70% plus a true-up), emission reports in kg, verification by accredited
verifiers, a trade on the order book (DvP), surrenders of allowances and offsets, and settlement after the
surrender deadline; while it waits for the deadline, governance: a parameter change approved by 2/3 of the
consortium's members, and a transfer above the new four-eyes threshold that waits for a second key. It
returns the period's compliance document; the caller prints it.

Deadlines are block times, and blocks take their time from the validators' clocks, so the demo waits
(visibly) until the surrender deadline has passed before settling. Each run uses a fresh period and
project id, so it can run again on a devnet that keeps its data; amounts adapt to what earlier runs left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audit import decode_served_block, verify_key_proof
from client import CarbonClient, Signer
from core.devkeys import dev_admin_key, dev_client_key
from core.errors import CarbonchainError
from core.genesis import Genesis
from core.tx import SignedTx

EVIDENCE_HASH = "ab" * 32  # stands for the hash of the monitoring plan and lab reports
READY_TIMEOUT_S = 60.0
COMMIT_TIMEOUT_S = 60.0
REPORTING_WINDOW_S = 15  # from opening the period to its reporting deadline
SURRENDER_WINDOW_S = 25  # from opening the period to its surrender deadline
DEADLINE_MARGIN_S = 1.5  # wait this much past the deadline (validators' clocks may differ a little)
ORGS = ("mee", "bank", "verifier-a", "verifier-b", "ent-a", "ent-b", "ent-c", "dev-a", "auditor")


class DemoFailed(CarbonchainError):
    """A step of the demo did not commit as expected."""


@dataclass
class DemoOutcome:
    period: str
    compliance: dict[str, Any]
    receipt: str  # the retirement receipt id
    heights: list[int] = field(default_factory=list)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Script:
    def __init__(self, client: CarbonClient, say: Callable[[str], None]) -> None:
        self.client = client
        self.say = say
        self.admins: dict[str, Signer] = {}
        self.clients: dict[str, Signer] = {}
        self.last_height = 0

    async def setup(self) -> None:
        for org in ORGS:
            self.admins[org] = await self.client.signer(org=org, key=dev_admin_key(org))
            self.clients[org] = await self.client.signer(org=org, key=dev_client_key(org))

    async def step(
        self, title: str, txs: list[SignedTx], *, tolerate: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Submit transactions together, wait for all, fail on any unexpected code; returns their results."""
        tx_ids = [await self.client.submit(tx) for tx in txs]
        statuses = await self.client.wait_for_commits(tx_ids, timeout_s=COMMIT_TIMEOUT_S)
        results = []
        for tx, tx_id in zip(txs, tx_ids, strict=True):
            status = statuses[tx_id]
            if not status.is_ok and status.code not in tolerate:
                raise DemoFailed(
                    f"{title}: {tx.body.sender_org} {tx.body.function} failed: {status.code}: {status.message}"
                )
            results.append(await self.client.tx_result(status))
        heights = sorted({s.height for s in statuses.values() if s.height is not None})
        self.last_height = max([self.last_height, *heights])
        where = f"height {heights[0]}" if len(heights) == 1 else f"heights {heights[0]}-{heights[-1]}"
        self.say(f"  ok  {title}  ({len(txs)} tx, {where})")
        return results

    def tx(self, sender: str, function: str, /, *, as_admin: bool = False, **args: Any) -> SignedTx:
        return (self.admins if as_admin else self.clients)[sender].build(function, args)


async def _governance(script: _Script, client: CarbonClient, run: int) -> None:
    """A parameter change approved by 2/3 of the members, then a transfer above the new four-eyes threshold
    that waits for, and executes on, the organisation's second key."""
    threshold = 100 + run % 100  # another value each run, so that a devnet can run the demo again
    members = [m["org"] for m in (await client.query("members"))["items"]]
    members.sort(key=lambda org: org != "mee")  # the regulator proposes, when it is a member
    proposer, others = members[0], members[1:]
    created = await script.step(
        f"{proposer} proposes lowering the four-eyes threshold of allowance transfers to {threshold} t",
        [
            script.tx(
                proposer,
                "propose",
                as_admin=True,
                action="set_parameter",
                args={"name": "four_eyes_allowance_t", "value": threshold},
                expires_height=script.last_height + 1000,
            )
        ],
    )
    proposal = int(_event(created, "proposal_created")["proposal"])
    executed = any(e.get("type") == "proposal_executed" for r in created for e in r.get("events", []))
    for voter in others:  # one approval at a time, until two thirds of the members have approved
        if executed:
            break
        results = await script.step(
            f"{voter} approves proposal {proposal}",
            [script.tx(voter, "approve", as_admin=True, proposal=proposal)],
        )
        executed = any(e.get("type") == "proposal_executed" for r in results for e in r.get("events", []))
    if not executed:
        raise DemoFailed(f"proposal {proposal} did not execute with every member's approval")
    record = await client.query("proposal", proposal=proposal)
    script.say(
        f"      proposal {proposal} executed: approved by {', '.join(v['org'] for v in record['approvals'])} "
        f"of {len(members)} members"
    )
    request = _event(
        await script.step(
            "ent-c transfers 250 t to ent-a with its client key: above the threshold, it waits",
            [script.tx("ent-c", "transfer_allowances", to="ent-a", amount_t=250)],
        ),
        "request_created",
    )
    number = int(request["request"])
    locked = (await client.holdings("ent-c"))["allowances_t"]["locked"]
    script.say(
        f"      request {number} pending until height {request['expires_height']}; ent-c has {locked} t locked"
    )
    approved = await script.step(
        f"ent-c's admin key, a second key, approves request {number}: the transfer executes",
        [script.tx("ent-c", "approve_request", as_admin=True, request=number)],
    )
    _event(approved, "allowances_transferred")


def _event(results: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    for result in results:
        for event in result.get("events", []):
            if event.get("type") == kind:
                return dict(event)
    raise DemoFailed(f"no {kind} event in the results")


async def wait_until_ready(client: CarbonClient, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await client.is_ready():
        if time.monotonic() > deadline:
            raise DemoFailed(f"{client.base_url} did not become ready within {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


async def run_demo(
    api_url: str,
    *,
    genesis: Genesis | None = None,
    say: Callable[[str], None] = print,
    reporting_window_s: int = REPORTING_WINDOW_S,
    surrender_window_s: int = SURRENDER_WINDOW_S,
) -> DemoOutcome:
    """Run the compliance year against the node at api_url; returns the period's compliance document."""
    async with CarbonClient(api_url) as client:
        await wait_until_ready(client)
        script = _Script(client, say)
        await script.setup()
        periods = await client.query_all("periods", "items")
        period = f"demo-{len(periods['items']) + 1}"
        project = f"wind-{period}"
        say(f"demo: a compliance year, period {period!r}, against {api_url}")

        await script.step(
            "every organisation's admin enrols a client key",
            [
                script.tx(org, "enrol_key", as_admin=True, public_key=dev_client_key(org).public_key.hex())
                for org in ORGS
            ],
            tolerate=("key_exists",),
        )
        await script.step(
            "the bank credits CNY 10,000 to each enterprise; dev-a registers a wind project",
            [
                script.tx("bank", "deposit_cash", org=org, amount_fen=1_000_000, bank_ref=f"{period}-{org}")
                for org in ("ent-a", "ent-b", "ent-c")
            ]
            + [
                script.tx(
                    "dev-a",
                    "register_project",
                    project=project,
                    developer="dev-a",
                    name="Gansu wind farm",
                    methodology="CM-001-V02",
                    standard="CCER",
                )
            ],
        )
        issued = _event(
            await script.step(
                "the registry issues 200 t of offsets with a 10% buffer",
                [
                    script.tx(
                        "mee",
                        "issue_offsets",
                        project=project,
                        vintage=2025,
                        monitoring_start_ms=0,
                        monitoring_end_ms=365 * 86_400_000,
                        amount_t=200,
                        buffer_bps=1000,
                    )
                ],
            ),
            "offsets_issued",
        )
        first = int(issued["first"])
        retired = _event(
            await script.step(
                f"dev-a sells serials {first}..{first + 49} to ent-a and retires {first + 50}..{first + 59}",
                [
                    script.tx("dev-a", "transfer_offsets", first=first, last=first + 49, to="ent-a"),
                    script.tx(
                        "dev-a",
                        "retire_offsets",
                        first=first + 50,
                        last=first + 59,
                        beneficiary="Shanghai Marathon 2026",
                        reason="event carbon neutrality",
                    ),
                ],
            ),
            "offsets_retired",
        )
        opened_ms = now_ms()
        surrender_deadline_ms = opened_ms + surrender_window_s * 1000
        await script.step(
            f"the regulator opens period {period} (reports within {reporting_window_s} s, "
            f"surrenders within {surrender_window_s} s)",
            [
                script.tx(
                    "mee",
                    "open_period",
                    period=period,
                    reporting_deadline_ms=opened_ms + reporting_window_s * 1000,
                    surrender_deadline_ms=surrender_deadline_ms,
                )
            ],
        )
        await script.step(
            "allocation: ent-a 1000 t, ent-b 877 kg/MWh x 1000 MWh x 70% + 100 t true-up, ent-c 2000 t",
            [
                script.tx("mee", "allocate", period=period, org="ent-a", amount_t=1000),
                script.tx(
                    "mee",
                    "allocate",
                    period=period,
                    org="ent-b",
                    benchmark_kg_per_unit=877,
                    output_units=1000,
                    share_bps=7000,
                ),
                script.tx("mee", "allocate", period=period, org="ent-b", amount_t=100),
                script.tx("mee", "allocate", period=period, org="ent-c", amount_t=2000),
            ],
        )
        emissions_kg = {"ent-a": 1_050_400, "ent-b": 900_000, "ent-c": 1_500_000}
        await script.step(
            "enterprises report emissions (kg, rounded to whole tonnes)",
            [
                script.tx(org, "submit_report", period=period, emissions_kg=kg, evidence_hash=EVIDENCE_HASH)
                for org, kg in emissions_kg.items()
            ],
        )
        await script.step(
            "accredited verifiers verify the reports",
            [
                script.tx(
                    verifier,
                    "verify_report",
                    period=period,
                    org=org,
                    verified_t=(emissions_kg[org] + 500) // 1000,
                    opinion="satisfactory",
                    evidence_hash=EVIDENCE_HASH,
                )
                for verifier, org in (
                    ("verifier-a", "ent-a"),
                    ("verifier-a", "ent-b"),
                    ("verifier-b", "ent-c"),
                )
            ],
        )
        await script.step(
            "ent-c offers 100 t at CNY 50.50/t",
            [script.tx("ent-c", "place_order", side="sell", quantity_t=100, price_fen=5050)],
        )
        trade = _event(
            await script.step(
                "ent-b bids 100 t at CNY 51.00/t: matched at 50.50, delivery versus payment",
                [script.tx("ent-b", "place_order", side="buy", quantity_t=100, price_fen=5100)],
            ),
            "trade",
        )
        say(
            f"      trade {trade.get('trade')}: {trade.get('quantity_t')} t at {trade.get('price_fen')} fen/t"
        )
        plan = {"ent-a": 1000, "ent-b": 813, "ent-c": 1600}
        surrenders = []
        for org, amount in plan.items():
            available = int((await client.holdings(org))["allowances_t"]["available"])
            surrenders.append(
                script.tx(org, "surrender_allowances", period=period, amount_t=min(amount, available))
            )
        surrenders.append(
            script.tx("ent-a", "surrender_offsets", period=period, first=first, last=first + 49)
        )
        await script.step("surrenders: allowances, and ent-a's 50 t of offsets (cap 5%)", surrenders)
        receipt_key = f"retire/{retired['receipt']}"
        receipt_proof = await client.key_proof(receipt_key)  # certified by the blocks settlement makes
        await _governance(script, client, len(periods["items"]))  # while the surrender deadline comes

        wait_s = (surrender_deadline_ms - now_ms()) / 1000 + DEADLINE_MARGIN_S
        if wait_s > 0:
            say(
                f"      waiting {wait_s:.0f} s for the surrender deadline to pass (deadlines are block times)"
            )
            await asyncio.sleep(wait_s)
        await script.step(
            "the regulator settles each enterprise",
            [script.tx("mee", "settle_period", period=period, org=org) for org in plan],
        )
        await script.step(
            "the regulator closes the period", [script.tx("mee", "close_period", period=period)]
        )
        if genesis is not None:
            certified_by = int(receipt_proof["certified_by_height"])
            await client.wait_for_height(certified_by, timeout_s=COMMIT_TIMEOUT_S)
            certified = decode_served_block(
                certified_by,
                await client.block_bytes(certified_by),
                tx_bytes_max=genesis.consensus.tx_bytes_max,
            )
            verify_key_proof(genesis, receipt_key.encode(), receipt_proof, certified)
            say(
                f"  ok  the retirement receipt's state proof leads to the root certified by block {certified_by} "
                f"({len(certified.certificate.votes)} of {len(genesis.validators)} validators signed)"
            )
        compliance = await client.compliance(period)
        return DemoOutcome(period, compliance, str(retired["receipt"]), [script.last_height])
