"""Offset projects and serial blocks: issuance, transfer, split, surrender (cap), retirement, freeze, cancel."""

from __future__ import annotations

from chainkit import EVIDENCE, Chain

PROJECT = {
    "project": "wind-1",
    "developer": "dev1",
    "name": "Wind farm",
    "methodology": "CM-001-V01",
    "standard": "CCER",
}


def _issue(chain: Chain, amount: int = 100, start: int = 0, end: int = 1000, **extra: int) -> None:
    chain.ok(
        "mee",
        "issue_offsets",
        project="wind-1",
        vintage=2024,
        monitoring_start_ms=start,
        monitoring_end_ms=end,
        amount_t=amount,
        **extra,
    )


def _blocks(chain: Chain) -> list[tuple[int, int, str, str]]:
    return [(b["first"], b["last"], b["holder"], b["status"]) for b in chain.query("offset_blocks")["items"]]


def test_register_project() -> None:
    chain = Chain()
    chain.fails("forbidden", "ent1", "register_project", **PROJECT)
    chain.fails("wrong_role", "mee", "register_project", **{**PROJECT, "developer": "ent1"})
    chain.fails("unknown_org", "mee", "register_project", **{**PROJECT, "developer": "ghost"})
    chain.ok("dev1", "register_project", **PROJECT)
    chain.fails("project_exists", "mee", "register_project", **PROJECT)
    chain.ok("mee", "register_project", **{**PROJECT, "project": "wind-2"})
    assert [p["id"] for p in chain.query("projects")["items"]] == ["wind-1", "wind-2"]


def test_issuance_serials_buffer_and_no_overlap() -> None:
    chain = Chain()
    chain.fails(
        "unknown_project",
        "mee",
        "issue_offsets",
        project="wind-1",
        vintage=2024,
        monitoring_start_ms=0,
        monitoring_end_ms=10,
        amount_t=10,
    )
    chain.ok("dev1", "register_project", **PROJECT)
    chain.fails(
        "forbidden",
        "dev1",
        "issue_offsets",
        project="wind-1",
        vintage=2024,
        monitoring_start_ms=0,
        monitoring_end_ms=10,
        amount_t=10,
    )
    chain.fails(
        "bad_amount",
        "mee",
        "issue_offsets",
        project="wind-1",
        vintage=2024,
        monitoring_start_ms=10,
        monitoring_end_ms=10,
        amount_t=10,
    )
    _issue(chain, 100, 0, 1000, buffer_bps=1050)  # 10.5 t buffer rounds down to 10
    chain.fails(
        "overlapping_issuance",
        "mee",
        "issue_offsets",
        project="wind-1",
        vintage=2024,
        monitoring_start_ms=999,
        monitoring_end_ms=2000,
        amount_t=5,
    )
    _issue(chain, 5, 1000, 2000)  # adjacent period: fine
    assert _blocks(chain) == [
        (1, 90, "dev1", "active"),
        (91, 100, "", "buffer"),
        (101, 105, "dev1", "active"),
    ]
    block = chain.query("offset_block", serial=95)
    assert block["serial"] == "1-91-100-CCER-wind-1-2024"
    supply = chain.query("supply")["offset"]
    assert (supply["issued"], supply["buffer"]) == (105, 10)
    assert len(chain.query("project", project="wind-1")["issuance_records"]) == 2


def test_transfer_exact_subrange() -> None:
    chain = Chain()
    chain.ok("dev1", "register_project", **PROJECT)
    _issue(chain)
    chain.fails("self_transfer", "dev1", "transfer_offsets", first=1, last=10, to="dev1")
    chain.fails("wrong_role", "dev1", "transfer_offsets", first=1, last=10, to="ver1")
    chain.fails("unknown_serial", "dev1", "transfer_offsets", first=500, last=510, to="ent1")
    chain.fails("range_not_in_block", "dev1", "transfer_offsets", first=10, last=9, to="ent1")
    chain.ok("dev1", "transfer_offsets", first=21, last=30, to="ent1")
    assert _blocks(chain) == [
        (1, 20, "dev1", "active"),
        (21, 30, "ent1", "active"),
        (31, 100, "dev1", "active"),
    ]
    chain.fails("range_not_in_block", "dev1", "transfer_offsets", first=15, last=35, to="ent2")
    chain.fails("not_holder", "dev1", "transfer_offsets", first=21, last=22, to="ent2")
    chain.fails("forbidden", "ver1", "transfer_offsets", first=21, last=22, to="ent2")
    holdings = chain.query("holdings", org="ent1")
    assert (
        holdings["offsets_held_t"] == 10
        and holdings["offset_blocks"][0]["serial"] == "1-21-30-CCER-wind-1-2024"
    )


def test_split_partitions_exactly() -> None:
    chain = Chain()
    chain.ok("dev1", "register_project", **PROJECT)
    _issue(chain)
    chain.fails("bad_split", "dev1", "split_offsets", first=1, last=100)
    chain.ok("dev1", "split_offsets", first=40, last=59)
    assert _blocks(chain) == [
        (1, 39, "dev1", "active"),
        (40, 59, "dev1", "active"),
        (60, 100, "dev1", "active"),
    ]
    chain.fails("not_holder", "ent1", "split_offsets", first=40, last=45)


def test_retirement_is_final_with_receipt() -> None:
    chain = Chain()
    chain.ok("dev1", "register_project", **PROJECT)
    _issue(chain)
    result = chain.ok(
        "dev1", "retire_offsets", first=1, last=5, beneficiary="Acme Ltd", reason="2025 neutral"
    )
    receipt_id = result.events[0]["receipt"]
    receipt = chain.query("retirement", receipt=receipt_id)
    assert (receipt["beneficiary"], receipt["quantity_t"], receipt["serial"]) == (
        "Acme Ltd",
        5,
        "1-1-5-CCER-wind-1-2024",
    )
    assert receipt["state_key"] == f"retire/{receipt_id}"
    chain.fails("serial_final", "dev1", "retire_offsets", first=1, last=5, beneficiary="x", reason="again")
    chain.fails("serial_final", "dev1", "transfer_offsets", first=1, last=5, to="ent1")
    chain.fails("serial_final", "mee", "freeze_offsets", first=1, last=5, reason="x")
    assert chain.query("supply")["offset"]["retired"] == 5


def test_surrender_offsets_with_cap() -> None:
    chain = Chain()
    chain.open_period()
    chain.ok("dev1", "register_project", **PROJECT)
    _issue(chain)
    chain.ok("dev1", "transfer_offsets", first=1, last=60, to="ent1")
    chain.fails("no_verified_emissions", "ent1", "surrender_offsets", period="2025", first=1, last=5)
    chain.ok("ent1", "submit_report", period="2025", emissions_kg=1_000_000, evidence_hash=EVIDENCE)
    chain.ok(
        "ver1",
        "verify_report",
        period="2025",
        org="ent1",
        verified_t=1000,
        opinion="satisfactory",
        evidence_hash=EVIDENCE,
    )
    chain.ok("ent1", "surrender_offsets", period="2025", first=1, last=30)
    chain.fails(
        "offset_cap_exceeded", "ent1", "surrender_offsets", period="2025", first=31, last=51
    )  # 51 > 50
    chain.ok("ent1", "surrender_offsets", period="2025", first=31, last=50)
    chain.fails("serial_final", "ent1", "surrender_offsets", period="2025", first=1, last=1)
    chain.fails("serial_final", "ent1", "transfer_offsets", first=1, last=1, to="ent2")
    row = chain.query("compliance", period="2025")["rows"][0]
    assert row["surrendered_offsets_t"] == 50


def test_freeze_unfreeze_and_cancel_serials() -> None:
    chain = Chain()
    chain.ok("dev1", "register_project", **PROJECT)
    _issue(chain, buffer_bps=1000)
    chain.fails("forbidden", "dev1", "freeze_offsets", first=1, last=10, reason="x")
    chain.ok("mee", "freeze_offsets", first=1, last=10, reason="stolen")
    chain.fails("serial_frozen", "dev1", "transfer_offsets", first=1, last=10, to="ent1")
    chain.fails("serial_frozen", "dev1", "retire_offsets", first=2, last=3, beneficiary="b", reason="r")
    chain.ok("dev1", "transfer_offsets", first=11, last=20, to="ent1")  # the rest still moves
    chain.ok("mee", "unfreeze_offsets", first=1, last=10, reason="recovered")
    chain.ok("dev1", "transfer_offsets", first=1, last=10, to="ent1")
    chain.ok("mee", "cancel_offsets", first=91, last=95, reason="reversal drawn on buffer")
    chain.ok("mee", "cancel_offsets", first=50, last=50, reason="double counted")
    chain.fails("serial_final", "mee", "cancel_offsets", first=50, last=50, reason="again")
    supply = chain.query("supply")["offset"]
    assert (supply["buffer"], supply["cancelled"]) == (5, 6)
