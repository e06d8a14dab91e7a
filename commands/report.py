"""`carbonchain report`: the regulator's compliance table and verifiable retirement receipts.

report compliance --period P [--csv|--json]   one row per enterprise: allocated, verified emissions,
                                              surrendered allowances and offsets, shortfall, penalty, status
report retirement RECEIPT [--out FILE]        a retirement receipt with its state proof, checked against a
                                              certified header; --out writes a self-contained document
                                              that `audit receipt FILE --genesis genesis.json` verifies
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from audit import build_receipt_document
from client import CarbonClient
from commands.audit import genesis_option, prove_key
from commands.common import echo_json
from commands.query import format_csv, format_table, node_option, run_async
from core.errors import CarbonchainError
from core.genesis import Genesis, load_genesis
from core.units import format_fen, format_time_ms

COMPLIANCE_COLUMNS = (
    "org",
    "allocated_t",
    "verified_t",
    "surrendered_allowances_t",
    "surrendered_offsets_t",
    "banked_in_t",
    "owed_in_t",
    "shortfall_t",
    "surplus_t",
    "penalty_fen",
    "status",
)
_SUMMED = COMPLIANCE_COLUMNS[1:-1]


def compliance_text(document: dict[str, Any]) -> str:
    period = document["period"]
    rows = document["rows"]
    lines = [
        f"compliance period {period.get('id')} ({period.get('status')}): penalty rule {period.get('penalty_rule')}, "
        f"{format_fen(int(period.get('penalty_fen_per_t', 0)))} CNY/t, offsets up to "
        f"{int(period.get('offset_cap_bps', 0)) / 100:g}% of verified emissions",
        f"reporting deadline {format_time_ms(period.get('reporting_deadline_ms'))}, "
        f"surrender deadline {format_time_ms(period.get('surrender_deadline_ms'))}",
        "",
    ]
    table = [
        {
            "org": row["org"],
            "allocated_t": row["allocated_t"],
            "verified_t": "-" if row["verified_t"] is None else row["verified_t"],
            "surr_allow_t": row["surrendered_allowances_t"],
            "surr_offset_t": row["surrendered_offsets_t"],
            "shortfall_t": row["shortfall_t"],
            "surplus_t": row["surplus_t"],
            "penalty_cny": format_fen(row["penalty_fen"]),
            "status": row["status"],
        }
        for row in rows
    ]
    if table:
        # verified_t is null until a verifier signs off (mid-year, or settled without a report): not a zero
        totals = {name: sum(row[name] or 0 for row in rows) for name in _SUMMED}
        table.append(
            {
                "org": "TOTAL",
                "allocated_t": totals["allocated_t"],
                "verified_t": totals["verified_t"],
                "surr_allow_t": totals["surrendered_allowances_t"],
                "surr_offset_t": totals["surrendered_offsets_t"],
                "shortfall_t": totals["shortfall_t"],
                "surplus_t": totals["surplus_t"],
                "penalty_cny": format_fen(totals["penalty_fen"]),
                "status": f"{sum(1 for r in rows if r['status'] in ('compliant', 'surplus'))}/{len(rows)} compliant",
            }
        )
    lines.append(format_table(table, right=("verified_t", "penalty_cny")))
    return "\n".join(lines)


def run_demo_and_print(api_url: str, genesis: Genesis | None = None) -> None:
    """`devnet --demo`: run the scripted compliance year, print its report; a failure is reported, not raised."""
    from tools.demo import run_demo

    try:
        outcome = run_async(run_demo(api_url, genesis=genesis, say=lambda line: click.echo(line)))
    except CarbonchainError as exc:
        click.echo(f"demo failed: {exc} (the network keeps running)", err=True)
        return
    click.echo("")
    click.echo(compliance_text(outcome.compliance))
    click.echo("")
    click.echo(f"retirement receipt: carbonchain report retirement {outcome.receipt} --node {api_url}")
    click.echo(f"audit the whole chain: carbonchain audit verify --node {api_url} --genesis genesis.json")
    click.echo("devnet keeps running; Ctrl-C stops it")


@click.group("report")
def report_group() -> None:
    """Regulator reports: compliance tables and verifiable retirement receipts."""


@report_group.command("compliance")
@click.option("--period", required=True, help="Compliance period id, e.g. 2026.")
@node_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (period and every row).")
@click.option("--csv", "as_csv", is_flag=True, help="Print the rows as CSV (integers: t and fen).")
def report_compliance(period: str, node: str, as_json: bool, as_csv: bool) -> None:
    """The period's compliance table: per enterprise allocated, verified emissions, surrendered, shortfall,
    penalty and status (open until the regulator settles it)."""

    async def fetch() -> dict[str, Any]:
        async with CarbonClient(node) as client:
            return await client.compliance(period)

    document = run_async(fetch())
    if as_json:
        echo_json(document)
    elif as_csv:
        click.echo(format_csv(document["rows"], COMPLIANCE_COLUMNS))
    else:
        click.echo(compliance_text(document))


@report_group.command("retirement")
@click.argument("receipt")
@node_option()
@genesis_option()
@click.option(
    "--timeout",
    "timeout_s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="Seconds to wait for the block that certifies the proof.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the verifiable receipt here."
)
@click.option("--json", "as_json", is_flag=True, help="Print the verifiable receipt document.")
def report_retirement(
    receipt: str, node: str, genesis_path: Path, timeout_s: float, out: Path | None, as_json: bool
) -> None:
    """A retirement receipt (RECEIPT = the retiring transaction id): what, how much, which serials, for whom,
    in which block, with its state proof checked against a certified header."""
    genesis = load_genesis(genesis_path)

    async def fetch() -> dict[str, Any]:
        async with CarbonClient(node) as client:
            record = await client.retirement(receipt)
            key_text = str(record["state_key"])
            proof = await prove_key(client, genesis, key_text.encode(), key_text, timeout_s=timeout_s)
            return build_receipt_document(
                genesis, record, proof.proven, str(proof.document["proof"]), proof.certified, proof.handovers
            )

    document = run_async(fetch())
    if out is not None:
        out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if as_json:
        echo_json(document)
        return
    record = document["receipt"]
    click.echo(f"retirement receipt {record['id']}")
    click.echo(f"  retired by:   {record['org']}")
    click.echo(f"  beneficiary:  {record['beneficiary']}")
    click.echo(f"  reason:       {record['reason']}")
    click.echo(f"  quantity:     {record['quantity_t']} t CO2e")
    click.echo(f"  serials:      {record['serial']} ({record['first']}..{record['last']})")
    click.echo(f"  project:      {record['project']} ({record['standard']}, vintage {record['vintage']})")
    click.echo(
        f"  block:        height {record['height']} at {format_time_ms(record['time_ms'])}, tx {record['tx_id']}"
    )
    click.echo(
        f"  proof:        {document['state_key']} in the state at height {document['state_height']}, root "
        f"{document['state_root']}"
    )
    click.echo("  VERIFIED against a header certified by the genesis validators")
    if out is not None:
        click.echo(
            f"  wrote {out}: anyone can check it with `carbonchain audit receipt {out} --genesis genesis.json`"
        )
