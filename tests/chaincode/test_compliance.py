"""Periods, allocation, reports, verification, surrender and settlement: success paths and failure codes."""

from __future__ import annotations

from chainkit import DAY_MS, EVIDENCE, Chain

from chaincode.compliance import compute_formula_allocation, compute_tonnes_from_kg
from core.block import TxResult


def test_rounding_rules() -> None:
    assert [compute_tonnes_from_kg(kg) for kg in (0, 499, 500, 1499, 1500)] == [0, 0, 1, 1, 2]
    assert compute_formula_allocation(877, 1000, 10_000, 7_000) == 613  # 613.9 rounded down
    assert compute_formula_allocation(877, 1000, 10_500, 10_000) == 920  # 920.85 rounded down


def test_open_and_close_period() -> None:
    chain = Chain()
    now = chain.time_ms
    chain.fails(
        "bad_deadlines",
        "mee",
        "open_period",
        period="p",
        reporting_deadline_ms=now,
        surrender_deadline_ms=now + DAY_MS,
    )
    chain.fails(
        "bad_deadlines",
        "mee",
        "open_period",
        period="p",
        reporting_deadline_ms=now + 2 * DAY_MS,
        surrender_deadline_ms=now + DAY_MS,
    )
    chain.fails(
        "forbidden",
        "ent1",
        "open_period",
        period="p",
        reporting_deadline_ms=now + DAY_MS,
        surrender_deadline_ms=now + DAY_MS,
    )
    chain.open_period("p", penalty_rule="eu", offset_cap_bps=1000)
    period = chain.query("period", period="p")
    assert (period["penalty_rule"], period["offset_cap_bps"], period["status"]) == ("eu", 1000, "open")
    chain.fails(
        "period_exists",
        "mee",
        "open_period",
        period="p",
        reporting_deadline_ms=now + 9 * DAY_MS,
        surrender_deadline_ms=now + 9 * DAY_MS,
    )
    chain.fails("deadline_not_reached", "mee", "close_period", period="p")
    chain.fails("unknown_period", "mee", "close_period", period="q")
    chain.advance_to(period["surrender_deadline_ms"] + 1)
    chain.ok("mee", "close_period", period="p")
    chain.fails("period_closed", "mee", "close_period", period="p")
    chain.fails("period_closed", "mee", "allocate", period="p", org="ent1", amount_t=1)


def test_allocate() -> None:
    chain = Chain()
    chain.open_period()
    chain.fails("forbidden", "ent1", "allocate", period="2025", org="ent1", amount_t=1)
    chain.fails("wrong_role", "mee", "allocate", period="2025", org="ver1", amount_t=1)
    chain.fails("unknown_org", "mee", "allocate", period="2025", org="ghost", amount_t=1)
    chain.fails("unknown_period", "mee", "allocate", period="1999", org="ent1", amount_t=1)
    chain.fails("bad_amount", "mee", "allocate", period="2025", org="ent1")
    chain.fails("bad_amount", "mee", "allocate", period="2025", org="ent1", amount_t=5, output_units=3)
    chain.ok(
        "mee",
        "allocate",
        period="2025",
        org="ent1",
        benchmark_kg_per_unit=877,
        output_units=1000,
        share_bps=7000,
    )
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=263)  # true-up
    assert chain.allowances("ent1") == 876
    allocation = chain.query("allocation", period="2025", org="ent1")
    assert allocation["total_t"] == 876
    assert allocation["entries"][0]["method"] == "benchmark" and allocation["entries"][0]["computed_t"] == 613
    for _ in range(14):
        chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=1)
    chain.fails("limit_exceeded", "mee", "allocate", period="2025", org="ent1", amount_t=1)


def test_report_and_verification() -> None:
    chain = Chain()
    chain.open_period()
    args = {"period": "2025", "emissions_kg": 1_000_400, "evidence_hash": EVIDENCE}
    chain.fails("forbidden", "ver1", "submit_report", **args)
    chain.ok("ent1", "submit_report", **args)
    chain.ok("ent1", "submit_report", **{**args, "emissions_kg": 1_000_600})  # corrected resubmission
    report = chain.query("report", period="2025", org="ent1")
    assert (report["emissions_t"], report["version"], report["status"]) == (1001, 2, "submitted")
    verify = {
        "period": "2025",
        "org": "ent1",
        "verified_t": 1001,
        "opinion": "satisfactory",
        "evidence_hash": EVIDENCE,
    }
    chain.fails("forbidden", "ent2", "verify_report", **verify)
    chain.fails("unknown_report", "ver1", "verify_report", **{**verify, "org": "ent2"})
    chain.fails("material_misstatement", "ver1", "verify_report", **{**verify, "verified_t": 1060})
    chain.ok("mee", "revoke_verifier", org="ver1")
    chain.fails("not_accredited", "ver1", "verify_report", **verify)
    chain.ok("mee", "accredit_verifier", org="ver1")
    chain.ok("ver1", "verify_report", **{**verify, "verified_t": 1040})  # within 5% materiality
    chain.fails("already_verified", "ver2", "verify_report", **verify)
    chain.fails("already_verified", "ent1", "submit_report", **args)
    report = chain.query("report", period="2025", org="ent1")
    assert report["verification"]["verifier"] == "ver1" and report["status"] == "verified"
    assert chain.query("compliance", period="2025")["rows"][0]["verified_t"] == 1040


def test_verifier_never_verifies_own_org() -> None:
    chain = Chain()
    chain.open_period()
    chain.ok(
        "mee",
        "register_organisation",
        org="ver3",
        name="V3",
        role="verifier",
        admin_keys=[chain.keys["ver1"].public_key.hex()],
    )
    # ver1's admin key is also an admin key of ver3: still, ver3 cannot verify a ver3 report (none exists),
    # and the own-org rule is checked before anything else
    chain.fails(
        "own_report",
        "ver1",
        "verify_report",
        period="2025",
        org="ver1",
        verified_t=1,
        opinion="satisfactory",
        evidence_hash=EVIDENCE,
    )


def test_not_satisfactory_opinion_leaves_no_verified_emissions() -> None:
    chain = Chain()
    chain.open_period()
    chain.ok("ent1", "submit_report", period="2025", emissions_kg=10_000, evidence_hash=EVIDENCE)
    chain.ok(
        "ver1",
        "verify_report",
        period="2025",
        org="ent1",
        verified_t=50,
        opinion="not_satisfactory",
        evidence_hash=EVIDENCE,
    )
    assert chain.query("report", period="2025", org="ent1")["status"] == "rejected"
    assert chain.query("compliance", period="2025")["rows"][0]["verified_t"] is None


def test_extend_period_moves_deadlines_later_and_never_reopens_one() -> None:
    chain = Chain()
    chain.open_period(report_in_ms=5 * DAY_MS, surrender_in_ms=10 * DAY_MS)
    period = chain.query("period", period="2025")
    reporting, surrender = period["reporting_deadline_ms"], period["surrender_deadline_ms"]

    def extend(code: str, new_reporting: int, new_surrender: int, org: str = "mee") -> TxResult:
        args = {
            "period": "2025",
            "reporting_deadline_ms": new_reporting,
            "surrender_deadline_ms": new_surrender,
        }
        if code == "ok":
            return chain.ok(org, "extend_period", **args)
        return chain.fails(code, org, "extend_period", **args)

    extend("forbidden", reporting, surrender + DAY_MS, org="ent1")
    extend("bad_deadlines", reporting - 1, surrender)  # earlier: never
    extend("bad_deadlines", reporting, surrender - 1)
    extend("bad_deadlines", surrender + 2 * DAY_MS, surrender + DAY_MS)  # reporting after surrender
    chain.fails(
        "unknown_period",
        "mee",
        "extend_period",
        period="2024",
        reporting_deadline_ms=reporting,
        surrender_deadline_ms=surrender,
    )
    result = extend("ok", reporting + DAY_MS, surrender + DAY_MS)
    reporting, surrender = reporting + DAY_MS, surrender + DAY_MS
    period = chain.query("period", period="2025")
    assert (period["reporting_deadline_ms"], period["surrender_deadline_ms"]) == (reporting, surrender)
    assert result.events == (
        {
            "period": "2025",
            "reporting_deadline_ms": reporting,
            "surrender_deadline_ms": surrender,
            "type": "period_extended",
        },
    )
    chain.advance_to(reporting + 1)  # reporting has closed: it stays closed
    extend("bad_deadlines", reporting + DAY_MS, surrender + DAY_MS)
    extend("ok", reporting, surrender + DAY_MS)
    surrender += DAY_MS
    chain.advance_to(surrender - 3000)  # past the old deadline; each block below adds 1 s
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=10)
    chain.ok("ent1", "surrender_allowances", period="2025", amount_t=1)
    chain.advance_to(surrender + 1)
    extend("deadline_passed", reporting, surrender + DAY_MS)
    chain.ok("mee", "close_period", period="2025")
    extend("period_closed", reporting, surrender + DAY_MS)


def test_report_deadline() -> None:
    chain = Chain()
    chain.open_period(report_in_ms=5 * DAY_MS)
    chain.advance_to(chain.query("period", period="2025")["reporting_deadline_ms"] + 1)
    chain.fails(
        "deadline_passed", "ent1", "submit_report", period="2025", emissions_kg=1, evidence_hash=EVIDENCE
    )


def test_surrender_allowances() -> None:
    chain = Chain()
    chain.open_period()
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=100)
    chain.fails("insufficient_balance", "ent1", "surrender_allowances", period="2025", amount_t=101)
    chain.fails("forbidden", "dev1", "surrender_allowances", period="2025", amount_t=1)
    chain.ok("ent1", "surrender_allowances", period="2025", amount_t=60)
    assert chain.allowances("ent1") == 40
    chain.advance_to(chain.query("period", period="2025")["surrender_deadline_ms"] + 1)
    chain.fails("deadline_passed", "ent1", "surrender_allowances", period="2025", amount_t=1)


def _verified(chain: Chain, org: str, tonnes: int) -> None:
    chain.ok(org, "submit_report", period="2025", emissions_kg=tonnes * 1000, evidence_hash=EVIDENCE)
    chain.ok(
        "ver1",
        "verify_report",
        period="2025",
        org=org,
        verified_t=tonnes,
        opinion="satisfactory",
        evidence_hash=EVIDENCE,
    )


def test_settlement_china_rule_deducts_next_allocation() -> None:
    chain = Chain()
    chain.open_period()
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=100)
    _verified(chain, "ent1", 130)
    chain.ok("ent1", "surrender_allowances", period="2025", amount_t=100)
    chain.fails("deadline_not_reached", "mee", "settle_period", period="2025", org="ent1")
    chain.advance_to(chain.query("period", period="2025")["surrender_deadline_ms"] + 1)
    chain.fails("forbidden", "ent1", "settle_period", period="2025", org="ent1")
    chain.fails("wrong_role", "mee", "settle_period", period="2025", org="dev1")
    chain.ok("mee", "settle_period", period="2025", org="ent1")
    chain.fails("already_settled", "mee", "settle_period", period="2025", org="ent1")
    row = chain.query("compliance", period="2025")["rows"][0]
    assert (row["status"], row["shortfall_t"], row["penalty_fen"]) == ("shortfall", 30, 30 * 10_000)
    assert chain.query("carry", org="ent1")["deduct_t"] == 30
    chain.open_period("2026")
    chain.ok("mee", "allocate", period="2026", org="ent1", amount_t=20)
    chain.ok("mee", "allocate", period="2026", org="ent1", amount_t=100)
    assert chain.allowances("ent1") == 90  # 120 allocated minus the 30 t deduction
    assert chain.query("carry", org="ent1")["deduct_t"] == 0


def test_settlement_eu_rule_make_good_and_banking() -> None:
    chain = Chain()
    chain.open_period(penalty_rule="eu", penalty_fen_per_t=80_000)
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=200)
    _verified(chain, "ent1", 150)
    chain.ok("ent1", "surrender_allowances", period="2025", amount_t=100)
    chain.advance_to(chain.query("period", period="2025")["surrender_deadline_ms"] + 1)
    chain.ok("mee", "settle_period", period="2025", org="ent1")
    row = chain.query("compliance", period="2025")["rows"][0]
    assert (row["status"], row["shortfall_t"], row["penalty_fen"]) == ("shortfall", 50, 50 * 80_000)
    assert chain.query("carry", org="ent1")["owed_t"] == 50
    chain.open_period("2026", penalty_rule="eu")
    chain.ok("ent1", "submit_report", period="2026", emissions_kg=10_000, evidence_hash=EVIDENCE)
    chain.ok(
        "ver1",
        "verify_report",
        period="2026",
        org="ent1",
        verified_t=10,
        opinion="satisfactory",
        evidence_hash=EVIDENCE,
    )
    chain.ok("ent1", "surrender_allowances", period="2026", amount_t=100)  # 10 + 50 owed, 40 surplus
    chain.advance_to(chain.query("period", period="2026")["surrender_deadline_ms"] + 1)
    chain.ok("mee", "settle_period", period="2026", org="ent1")
    row = chain.query("compliance", period="2026")["rows"][0]
    assert (row["status"], row["owed_in_t"], row["surplus_t"]) == ("surplus", 50, 40)
    assert chain.query("carry", org="ent1") == {"org": "ent1", "banked_t": 40, "owed_t": 0, "deduct_t": 0}


def test_settlement_without_verified_emissions_blocks_account() -> None:
    chain = Chain()
    chain.open_period()
    chain.ok("mee", "allocate", period="2025", org="ent2", amount_t=100)
    chain.advance_to(chain.query("period", period="2025")["surrender_deadline_ms"] + 1)
    chain.ok("mee", "settle_period", period="2025", org="ent2")
    assert chain.query("compliance", period="2025")["rows"][0]["status"] == "blocked"
    assert chain.query("organisation", org="ent2")["blocked"] is True
    chain.fails("frozen", "ent2", "transfer_allowances", to="ent1", amount_t=1)
    chain.ok("mee", "unfreeze_account", org="ent2", reason="estimate agreed")
    chain.ok("ent2", "transfer_allowances", to="ent1", amount_t=1)


def test_verification_after_settlement_is_refused() -> None:
    chain = Chain()
    chain.open_period()
    chain.ok("ent1", "submit_report", period="2025", emissions_kg=1000, evidence_hash=EVIDENCE)
    chain.advance_to(chain.query("period", period="2025")["surrender_deadline_ms"] + 1)
    chain.ok("mee", "settle_period", period="2025", org="ent1")
    chain.fails(
        "already_settled",
        "ver1",
        "verify_report",
        period="2025",
        org="ent1",
        verified_t=1,
        opinion="satisfactory",
        evidence_hash=EVIDENCE,
    )


def test_a_penalty_too_large_to_store_is_a_failure_not_a_crash() -> None:
    """10^12 t short at 10^9 fen/t is 10^21 fen, beyond what the codec encodes (2^64): the settlement used to
    raise InvariantBroken, which halts every node on that block."""
    chain = Chain()
    chain.open_period(penalty_fen_per_t=10**9)
    chain.ok("ent1", "submit_report", period="2025", emissions_kg=10**15, evidence_hash=EVIDENCE)
    chain.ok("ver1", "verify_report", period="2025", org="ent1", verified_t=10**12,
             opinion="satisfactory_with_comments", evidence_hash=EVIDENCE)  # fmt: skip
    chain.advance_to(chain.time_ms + 30 * DAY_MS)
    chain.fails("overflow", "mee", "settle_period", period="2025", org="ent1")
