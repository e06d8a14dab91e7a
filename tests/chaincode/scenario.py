"""A small compliance year, end to end: shared by the scenario test, the determinism test and the docs.

Three enterprises: ent1 ends exactly compliant (allowances plus offsets within the 5% cap), ent2 short
(buys some allowances on the order book, still short: China rule, fine and deduction), ent3 with a surplus.
"""

from __future__ import annotations

from chainkit import DAY_MS, EVIDENCE, Chain


def run_compliance_year(chain: Chain) -> None:
    start = chain.time_ms
    chain.ok(
        "mee",
        "open_period",
        period="2025",
        reporting_deadline_ms=start + 30 * DAY_MS,
        surrender_deadline_ms=start + 60 * DAY_MS,
    )
    # allocation: explicit for ent1 and ent3; benchmark x output x 70% pre-allocation, then a true-up, for ent2
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=1000)
    chain.ok(
        "mee",
        "allocate",
        period="2025",
        org="ent2",
        benchmark_kg_per_unit=877,
        output_units=1000,
        share_bps=7000,
    )  # floor(613.9) = 613 t
    chain.ok("mee", "allocate", period="2025", org="ent2", amount_t=100)
    chain.ok("mee", "allocate", period="2025", org="ent3", amount_t=2000)
    for org in ("ent1", "ent2", "ent3"):
        chain.ok("bank", "deposit_cash", org=org, amount_fen=1_000_000, bank_ref=f"2025-{org}")
    # offsets: a wind project, 200 t with a 10% buffer; 50 t sold OTC to ent1, 10 t retired by the developer
    chain.ok(
        "dev1",
        "register_project",
        project="wind-gs-1",
        developer="dev1",
        name="Gansu wind",
        methodology="CM-001-V02",
        standard="CCER",
    )
    chain.ok(
        "mee",
        "issue_offsets",
        project="wind-gs-1",
        vintage=2024,
        monitoring_start_ms=0,
        monitoring_end_ms=DAY_MS * 365,
        amount_t=200,
        buffer_bps=1000,
    )
    chain.ok("dev1", "transfer_offsets", first=1, last=50, to="ent1")
    chain.ok(
        "dev1",
        "retire_offsets",
        first=51,
        last=60,
        beneficiary="Shanghai Marathon 2025",
        reason="event carbon neutrality",
    )
    # reports (kg, rounded to the nearest tonne) and verification by accredited verifiers
    for org, kg in (("ent1", 1_050_400), ("ent2", 900_000), ("ent3", 1_500_000)):
        chain.ok(org, "submit_report", period="2025", emissions_kg=kg, evidence_hash=EVIDENCE)
    for verifier, org, tonnes in (("ver1", "ent1", 1050), ("ver1", "ent2", 900), ("ver2", "ent3", 1500)):
        chain.ok(
            verifier,
            "verify_report",
            period="2025",
            org=org,
            verified_t=tonnes,
            opinion="satisfactory",
            evidence_hash=EVIDENCE,
        )
    # trading: ent3 sells 100 t, ent2 buys at a higher limit and gets the resting price
    chain.ok("ent3", "place_order", side="sell", quantity_t=100, price_fen=5050)
    chain.ok("ent2", "place_order", side="buy", quantity_t=100, price_fen=5100)
    # surrenders
    chain.ok("ent1", "surrender_allowances", period="2025", amount_t=1000)
    chain.ok("ent1", "surrender_offsets", period="2025", first=1, last=50)  # cap floor(1050 x 5%) = 52
    chain.ok("ent2", "surrender_allowances", period="2025", amount_t=813)
    chain.ok("ent3", "surrender_allowances", period="2025", amount_t=1600)
    # after the deadline: settle each enterprise once, then close
    chain.advance_to(start + 60 * DAY_MS + 1)
    for org in ("ent1", "ent2", "ent3"):
        chain.ok("mee", "settle_period", period="2025", org=org)
    chain.ok("mee", "close_period", period="2025")
