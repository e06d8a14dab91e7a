"""The transactions of the conformance chain: every chaincode function, and every failure code it can return.

Blocks 1-6 are the compliance years (below); blocks 7-10 governance, four-eyes and evidence
(conformance.script_gov).

Two compliance periods (`2025` under the China rule, `2026` under the EU rule), offsets from issuance to
surrender, retirement and cancellation, an order book with block trades, self-trade and frozen-owner skips,
the match limit and a reference roll, identity with key revocation, and around them one transaction for
each way a function can fail. Each call names the result code it must get; the generator refuses a chain
where one differs, so the script also tests the chaincode.

The genesis lowers a few limits (open orders, matches, skips, keys, allocations, issuances, block-trade size)
so that reaching them takes a handful of transactions. Block times are offsets from genesis time; the
reporting deadline of 2025 passes before block 3, its surrender deadline before block 4, and block 5 is
on the next trading day.
"""

from __future__ import annotations

from conformance.genesis import DAY_MS, EVIDENCE, at, key_hex
from conformance.script_blocks import Call, ScriptBlock
from conformance.script_gov import build_governance_blocks

# Failure codes the script does not reach, and why: within the argument bounds, reaching 2^62 (a balance or
# total) or a counter's maximum takes millions of transactions. Every other declared code of every function
# is reached (tests/conformance/test_vectors.py).
UNREACHED = {  # and the request counter of four-eyes functions: 10^16 requests
    ("allocate", "overflow"): "a balance or total above 2^62 needs over 4 million allocations",
    ("issue_offsets", "overflow"): "serials above 10^15 need 1000 issuances of 10^12 t",
    ("transfer_allowances", "overflow"): "a balance above 2^62 needs over 4 million allocations",
    ("deposit_cash", "overflow"): "cash above 2^62 needs over 4,600 deposits of 10^15 fen",
    ("place_order", "overflow"): "a balance above 2^62, or 10^16 orders",
    ("propose", "overflow"): "10^16 proposals",
    (
        "propose",
        "too_many_validators",
    ): "64 validators: 60 additions, each in force before the next (consensus "
    "does not put changes in force yet)",
    ("transfer_offsets", "overflow"): "10^16 four-eyes requests",
    ("withdraw_cash", "overflow"): "10^16 four-eyes requests",
    ("freeze_account", "overflow"): "10^16 four-eyes requests",
    ("unfreeze_account", "overflow"): "10^16 four-eyes requests",
    ("set_four_eyes_thresholds", "overflow"): "10^16 four-eyes requests",
}


def build_script() -> list[ScriptBlock]:
    """Six blocks: the first two hold everything before the 2025 reporting deadline (fewer heights keep
    the vectors small: each height carries the full state)."""
    blocks = [
        _merge(_identity(), _setup()),
        _merge(_offsets(), _market(), _reports()),
        _surrenders(),
        _settlement(),
        _second_period(),
        _second_settlement(),
    ]
    return blocks + build_governance_blocks(blocks[-1].offset_ms + 50_000)


def _merge(*parts: ScriptBlock) -> ScriptBlock:
    return ScriptBlock(parts[0].offset_ms, [call for part in parts for call in part.calls])


# --- block 1: identity, accreditation, freezes, executor refusals ---------------------------------------------


def _identity() -> ScriptBlock:
    b = ScriptBlock(1_000)
    # executor refusals (docs/CHAINCODE.md 2.1)
    b.add("ent1", "transfer_allowances", "unknown_sender", key="client-9", to="ent2", amount_t=1)
    b.add("ghost", "transfer_allowances", "unknown_sender", to="ent2", amount_t=1)
    b.add("mee", "no_such_function", "unknown_function")
    b.calls.append(
        Call("mee", "set_reference_price", {"price_fen": 1}, "unknown_function", chaincode="other")
    )
    b.add("mee", "set_reference_price", "invalid_args", price_fen="5000")
    b.add("mee", "set_reference_price", "invalid_args", price_fen=True)
    b.add("mee", "set_reference_price", "invalid_args", price_fen=0)
    b.add("mee", "set_reference_price", "invalid_args", price_fen=5000, extra=1)
    b.add("mee", "set_reference_price", "invalid_args")
    b.add("mee", "freeze_account", "invalid_args", org="ent1", reason="bell\x07")
    b.add("mee", "freeze_account", "invalid_args", org="ent1", reason="x" * 201)
    b.add(
        "mee", "open_period", "invalid_args", period="p\n", reporting_deadline_ms=1, surrender_deadline_ms=2
    )
    b.add(
        "mee", "open_period", "invalid_args", period="2025", reporting_deadline_ms=-1, surrender_deadline_ms=2
    )
    b.add("mee", "register_organisation", "invalid_args", org="Big", name="x", role="enterprise",
          admin_keys=[key_hex("ent1")])  # fmt: skip
    b.add("mee", "register_organisation", "invalid_args", org="ent9", name="x", role="enterprise",
          admin_keys=[key_hex("ent9", f"client-{j}") for j in range(16)] + [key_hex("ent9")])  # fmt: skip
    # keys
    b.add("mee", "enrol_key", public_key=key_hex("mee", "client-0"))  # a non-admin key
    b.add("ent1", "enrol_key", public_key=key_hex("ent1", "client-0"))
    b.add("ent1", "enrol_key", public_key=key_hex("ent1", "client-1"), admin=True)
    b.add("ent1", "enrol_key", "key_exists", public_key=key_hex("ent1", "client-0"))
    b.add("ent1", "enrol_key", "not_admin", key="client-0", public_key=key_hex("ent1", "client-2"))
    b.add("ent2", "enrol_key", public_key=key_hex("ent2", "client-0"), admin=None)  # nil is absent: false
    for j in range(3):
        b.add("dev2", "enrol_key", public_key=key_hex("dev2", f"client-{j}"))
    b.add("dev2", "enrol_key", "limit_exceeded", public_key=key_hex("dev2", "client-3"))
    b.add("ent1", "revoke_key", org="ent1", public_key=key_hex("ent1", "client-0"))
    b.add("ent1", "transfer_allowances", "revoked_key", key="client-0", to="ent2", amount_t=1)
    b.add("ent1", "enrol_key", "key_revoked", public_key=key_hex("ent1", "client-0"))
    b.add("ent1", "revoke_key", "key_revoked", org="ent1", public_key=key_hex("ent1", "client-0"))
    b.add("ent1", "revoke_key", org="ent1", public_key=key_hex("ent1", "client-1"))  # an admin, not the last
    b.add("ent2", "revoke_key", "last_admin", org="ent2", public_key=key_hex("ent2"))
    b.add("ent1", "revoke_key", "forbidden", org="ent2", public_key=key_hex("ent2", "client-0"))
    b.add("mee", "revoke_key", org="ent2", public_key=key_hex("ent2", "client-0"))  # a regulator, for anyone
    b.add("mee", "revoke_key", "unknown_org", org="ghost", public_key=key_hex("ent2"))
    b.add("ent1", "revoke_key", "unknown_key", org="ent1", public_key=key_hex("ent1", "client-5"))
    b.add("mee", "revoke_key", "not_admin", key="client-0", org="ent1", public_key=key_hex("ent1"))
    # organisations
    b.add("ent1", "register_organisation", "forbidden", org="ent5", name="x", role="enterprise",
          admin_keys=[key_hex("ent5")])  # fmt: skip
    b.add("mee", "register_organisation", "not_admin", key="client-0", org="ent5", name="x", role="enterprise",
          admin_keys=[key_hex("ent5")])  # fmt: skip
    b.add("mee", "register_organisation", "org_exists", org="ent1", name="x", role="enterprise",
          admin_keys=[key_hex("ent5")])  # fmt: skip
    b.add("mee", "register_organisation", "key_exists", org="ent5", name="x", role="enterprise",
          admin_keys=[key_hex("ent5"), key_hex("ent5")])  # fmt: skip
    b.add("mee", "register_organisation", org="ent5", name="Glass Works Five", role="enterprise",
          admin_keys=[key_hex("ent5"), key_hex("ent5", "client-0")])  # fmt: skip
    b.add("mee", "register_organisation", org="ver3", name="Verifier Three", role="verifier",
          admin_keys=[key_hex("ver3")])  # fmt: skip
    # accreditation
    b.add("ent1", "accredit_verifier", "forbidden", org="ver1")
    b.add("mee", "accredit_verifier", "unknown_org", org="ghost")
    b.add("mee", "accredit_verifier", "wrong_role", org="ent1")
    b.add("ent1", "revoke_verifier", "forbidden", org="ver2")
    b.add("mee", "revoke_verifier", "unknown_org", org="ghost")
    b.add("mee", "revoke_verifier", "wrong_role", org="dev1")
    b.add("mee", "revoke_verifier", org="ver2")
    # freezes
    b.add("ent1", "freeze_account", "forbidden", org="ent2", reason="no")
    b.add("mee", "freeze_account", "unknown_org", org="ghost", reason="theft")
    b.add("mee", "freeze_account", "wrong_role", org="mee", reason="theft")
    b.add("ent1", "unfreeze_account", "forbidden", org="ent2", reason="no")
    b.add("mee", "unfreeze_account", "unknown_org", org="ghost", reason="resolved")
    b.add("mee", "freeze_account", org="dev2", reason="phishing report")
    b.add(
        "dev2", "enrol_key", "limit_exceeded", public_key=key_hex("dev2", "client-4")
    )  # allowed while frozen
    b.add("dev2", "register_project", "frozen", project="solar-9", developer="dev2", name="x",
          methodology="m", standard="CCER")  # fmt: skip
    # the order of the checks (docs/CHAINCODE.md 2.1): sender, function, arguments, role, admin key, freeze
    b.add("dev2", "place_order", "forbidden", side="buy", quantity_t=1, price_fen=5000)  # role before freeze
    b.add(
        "dev2", "place_order", "invalid_args", side="hold", quantity_t=1, price_fen=5000
    )  # args before role
    b.add("ghost", "no_such_function", "unknown_sender")  # the sender before the function
    b.add("mee", "unfreeze_account", org="dev2", reason="resolved")
    return b


# --- block 2: period, allocation, cash, projects, issuance -------------------------------------------------------


def _setup() -> ScriptBlock:
    b = ScriptBlock(2_000)
    b.add("ent1", "open_period", "forbidden", period="2025", reporting_deadline_ms=at(100_000),
          surrender_deadline_ms=at(200_000))  # fmt: skip
    b.add("mee", "open_period", period="2025", reporting_deadline_ms=at(100_000),
          surrender_deadline_ms=at(200_000), offset_cap_bps=None)  # fmt: skip
    b.add("mee", "open_period", "period_exists", period="2025", reporting_deadline_ms=at(100_000),
          surrender_deadline_ms=at(200_000))  # fmt: skip
    b.add("mee", "open_period", "bad_deadlines", period="2025x", reporting_deadline_ms=at(0),
          surrender_deadline_ms=at(200_000))  # fmt: skip
    b.add("mee", "open_period", "bad_deadlines", period="2025x", reporting_deadline_ms=at(200_001),
          surrender_deadline_ms=at(200_000))  # fmt: skip
    # a second period whose deadlines are extended (and which closes, unused, in the settlement block)
    b.add("mee", "open_period", period="2025-ext", reporting_deadline_ms=at(100_000),
          surrender_deadline_ms=at(120_000))  # fmt: skip
    b.add("ent1", "extend_period", "forbidden", period="2025-ext", reporting_deadline_ms=at(100_000),
          surrender_deadline_ms=at(140_000))  # fmt: skip
    b.add("mee", "extend_period", "unknown_period", period="1999", reporting_deadline_ms=at(100_000),
          surrender_deadline_ms=at(140_000))  # fmt: skip
    b.add("mee", "extend_period", "bad_deadlines", period="2025-ext", reporting_deadline_ms=at(100_000),
          surrender_deadline_ms=at(110_000))  # fmt: skip
    b.add("mee", "extend_period", period="2025-ext", reporting_deadline_ms=at(100_000),
          surrender_deadline_ms=at(140_000))  # fmt: skip
    b.add("ent1", "close_period", "forbidden", period="2025")
    b.add("mee", "close_period", "unknown_period", period="1999")
    b.add("mee", "close_period", "deadline_not_reached", period="2025")
    b.add("mee", "settle_period", "deadline_not_reached", period="2025", org="ent1")
    # allocation
    b.add("ent1", "allocate", "forbidden", period="2025", org="ent1", amount_t=1)
    b.add("mee", "allocate", "unknown_period", period="1999", org="ent1", amount_t=1)
    b.add("mee", "allocate", "unknown_org", period="2025", org="ghost", amount_t=1)
    b.add("mee", "allocate", "wrong_role", period="2025", org="dev1", amount_t=1)
    b.add("mee", "allocate", "bad_amount", period="2025", org="ent1", amount_t=1, output_units=5)
    b.add("mee", "allocate", "bad_amount", period="2025", org="ent1")
    b.add("mee", "allocate", "bad_amount", period="2025", org="ent1", benchmark_kg_per_unit=877)
    b.add("mee", "allocate", period="2025", org="ent1", amount_t=1000)
    b.add(
        "mee",
        "allocate",
        period="2025",
        org="ent2",
        benchmark_kg_per_unit=877,
        output_units=1000,
        share_bps=7000,
    )  # fmt: skip  floor(613.9) = 613
    b.add("mee", "allocate", period="2025", org="ent2", amount_t=100)
    b.add("mee", "allocate", "limit_exceeded", period="2025", org="ent2", amount_t=1)
    b.add("mee", "allocate", period="2025", org="ent3", amount_t=3000)
    b.add("mee", "allocate", period="2025", org="ent4", amount_t=0)
    # cash
    for org in ("ent1", "ent2", "ent3", "ent4", "dev1"):
        b.add("bank", "deposit_cash", org=org, amount_fen=10_000_000, bank_ref=f"IN-{org}")
    b.add("bank", "deposit_cash", "duplicate_reference", org="ent1", amount_fen=1, bank_ref="IN-ent1")
    b.add("ent1", "deposit_cash", "forbidden", org="ent1", amount_fen=1, bank_ref="X")
    b.add("bank", "deposit_cash", "unknown_org", org="ghost", amount_fen=1, bank_ref="X")
    b.add("bank", "deposit_cash", "wrong_role", org="ver1", amount_fen=1, bank_ref="X")
    b.add("ent1", "withdraw_cash", "forbidden", org="ent1", amount_fen=1, bank_ref="OUT-1")
    b.add("bank", "withdraw_cash", "unknown_org", org="ghost", amount_fen=1, bank_ref="OUT-1")
    b.add("bank", "withdraw_cash", "wrong_role", org="mee", amount_fen=1, bank_ref="OUT-1")
    b.add("bank", "withdraw_cash", "insufficient_cash", org="ent1", amount_fen=10_000_001, bank_ref="OUT-1")
    b.add("bank", "withdraw_cash", org="ent1", amount_fen=1_000, bank_ref="OUT-1")
    b.add("bank", "withdraw_cash", "duplicate_reference", org="ent2", amount_fen=1, bank_ref="OUT-1")
    b.add("mee", "freeze_account", org="bank", reason="audit")
    b.add("bank", "deposit_cash", "frozen", org="ent1", amount_fen=1, bank_ref="X")
    b.add("mee", "unfreeze_account", org="bank", reason="audit done")
    # projects and issuance
    b.add("ent1", "register_project", "forbidden", project="wind-1", developer="dev1", name="x",
          methodology="m", standard="CCER")  # fmt: skip
    b.add("dev2", "register_project", "forbidden", project="wind-1", developer="dev1", name="x",
          methodology="m", standard="CCER")  # fmt: skip
    b.add("mee", "register_project", "unknown_org", project="wind-1", developer="ghost", name="x",
          methodology="m", standard="CCER")  # fmt: skip
    b.add("mee", "register_project", "wrong_role", project="wind-1", developer="ent1", name="x",
          methodology="m", standard="CCER")  # fmt: skip
    b.add("dev1", "register_project", project="wind-1", developer="dev1", name="Gansu wind",
          methodology="CM-001-V02", standard="CCER")  # fmt: skip
    b.add("mee", "register_project", project="solar-1", developer="dev1", name="Qinghai solar",
          methodology="CMS-002-V01", standard="VCS")  # fmt: skip
    b.add("dev1", "register_project", "project_exists", project="wind-1", developer="dev1", name="x",
          methodology="m", standard="CCER")  # fmt: skip
    b.add("ent1", "issue_offsets", "forbidden", project="wind-1", vintage=2024, monitoring_start_ms=0,
          monitoring_end_ms=DAY_MS, amount_t=1)  # fmt: skip
    b.add("mee", "issue_offsets", "unknown_project", project="hydro-1", vintage=2024, monitoring_start_ms=0,
          monitoring_end_ms=DAY_MS, amount_t=1)  # fmt: skip
    b.add("mee", "issue_offsets", "bad_amount", project="wind-1", vintage=2024, monitoring_start_ms=DAY_MS,
          monitoring_end_ms=DAY_MS, amount_t=1)  # fmt: skip
    # serials 1..180 held by dev1, 181..200 in the buffer
    b.add("mee", "issue_offsets", project="wind-1", vintage=2024, monitoring_start_ms=0,
          monitoring_end_ms=365 * DAY_MS, amount_t=200, buffer_bps=1000)  # fmt: skip
    b.add("mee", "issue_offsets", "overlapping_issuance", project="wind-1", vintage=2024,
          monitoring_start_ms=364 * DAY_MS, monitoring_end_ms=400 * DAY_MS, amount_t=1)  # fmt: skip
    # serials 201..300, no buffer (the parameter is 0)
    b.add("mee", "issue_offsets", project="wind-1", vintage=2025, monitoring_start_ms=365 * DAY_MS,
          monitoring_end_ms=730 * DAY_MS, amount_t=100)  # fmt: skip
    b.add("mee", "issue_offsets", "limit_exceeded", project="wind-1", vintage=2026,
          monitoring_start_ms=730 * DAY_MS, monitoring_end_ms=800 * DAY_MS, amount_t=1)  # fmt: skip
    # serials 301..350: 301..339 held, 340..350 buffer (floor(50 x 23%) = 11)
    b.add("mee", "issue_offsets", project="solar-1", vintage=2025, monitoring_start_ms=0,
          monitoring_end_ms=DAY_MS, amount_t=50, buffer_bps=2300)  # fmt: skip
    return b


# --- block 3: offsets: transfer, freeze, split, retire, cancel ---------------------------------------------------


def _offsets() -> ScriptBlock:
    b = ScriptBlock(3_000)
    b.add("dev1", "transfer_offsets", first=1, last=60, to="ent1")
    b.add("ver1", "transfer_offsets", "forbidden", first=1, last=1, to="ent2")
    b.add("dev1", "transfer_offsets", "self_transfer", first=61, last=61, to="dev1")
    b.add("dev1", "transfer_offsets", "unknown_org", first=61, last=61, to="ghost")
    b.add("dev1", "transfer_offsets", "wrong_role", first=61, last=61, to="ver1")
    b.add("dev1", "transfer_offsets", "range_not_in_block", first=70, last=61, to="ent2")
    b.add("dev1", "transfer_offsets", "range_not_in_block", first=170, last=190, to="ent2")
    b.add("dev1", "transfer_offsets", "unknown_serial", first=351, last=351, to="ent2")
    b.add("dev1", "transfer_offsets", "serial_final", first=181, last=181, to="ent2")  # the buffer
    b.add("ent2", "transfer_offsets", "not_holder", first=61, last=61, to="ent3")
    b.add("mee", "freeze_offsets", first=61, last=70, reason="disputed monitoring report")
    b.add("dev1", "transfer_offsets", "serial_frozen", first=65, last=65, to="ent2")
    b.add("mee", "unfreeze_offsets", first=61, last=65, reason="report corrected")
    b.add("dev1", "transfer_offsets", first=61, last=61, to="ent2")
    b.add("mee", "freeze_account", org="ent3", reason="suspicious transfers")
    b.add("dev1", "transfer_offsets", "frozen", first=62, last=62, to="ent3")
    b.add("ent3", "transfer_offsets", "frozen", first=1, last=1, to="ent2")
    b.add("ent3", "retire_offsets", "frozen", first=1, last=1, beneficiary="x", reason="x")
    b.add("ent3", "transfer_allowances", "frozen", to="ent2", amount_t=1)
    b.add("ent3", "place_order", "frozen", side="sell", quantity_t=1, price_fen=5000)
    b.add("bank", "withdraw_cash", "frozen", org="ent3", amount_fen=1, bank_ref="OUT-2")
    b.add("bank", "deposit_cash", org="ent3", amount_fen=1, bank_ref="IN-ent3-2")  # money in is accepted
    b.add("ent3", "split_offsets", "not_holder", first=1, last=1)  # allowed while frozen, but not its block
    b.add("mee", "unfreeze_account", org="ent3", reason="cleared")
    # split
    b.add("ent1", "split_offsets", first=1, last=10)  # 1..10 | 11..60
    b.add("ent1", "split_offsets", "bad_split", first=1, last=10)
    b.add("ver1", "split_offsets", "forbidden", first=1, last=2)
    b.add("ent1", "split_offsets", "range_not_in_block", first=5, last=4)
    b.add("ent1", "split_offsets", "range_not_in_block", first=10, last=11)
    b.add("ent1", "split_offsets", "unknown_serial", first=400, last=400)
    b.add("dev1", "split_offsets", "serial_final", first=182, last=182)
    b.add("dev1", "split_offsets", "serial_frozen", first=66, last=67)
    # retire
    b.add("dev1", "retire_offsets", first=71, last=80, beneficiary="Shanghai Marathon 2025",
          reason="event carbon neutrality")  # fmt: skip
    b.add("aud", "retire_offsets", "forbidden", first=81, last=81, beneficiary="x", reason="x")
    b.add("dev1", "retire_offsets", "serial_final", first=75, last=75, beneficiary="x", reason="x")
    b.add("ent1", "retire_offsets", "not_holder", first=81, last=81, beneficiary="x", reason="x")
    b.add("dev1", "retire_offsets", "serial_frozen", first=66, last=66, beneficiary="x", reason="x")
    b.add("dev1", "retire_offsets", "range_not_in_block", first=81, last=80, beneficiary="x", reason="x")
    b.add("dev1", "retire_offsets", "unknown_serial", first=999, last=999, beneficiary="x", reason="x")
    # freeze, unfreeze and cancel, on held and buffer serials
    for function in ("freeze_offsets", "unfreeze_offsets", "cancel_offsets"):
        b.add("ent1", function, "forbidden", first=81, last=81, reason="x")
        b.add("mee", function, "range_not_in_block", first=81, last=80, reason="x")
        b.add("mee", function, "range_not_in_block", first=170, last=190, reason="x")
        b.add("mee", function, "unknown_serial", first=5_000, last=5_000, reason="x")
        b.add("mee", function, "serial_final", first=72, last=72, reason="x")  # retired
    b.add("mee", "freeze_offsets", first=181, last=190, reason="reversal pending")  # buffer
    b.add("mee", "unfreeze_offsets", first=181, last=185, reason="reversal smaller")
    b.add("mee", "cancel_offsets", first=186, last=190, reason="reversal: fire damage")  # frozen buffer
    b.add("mee", "cancel_offsets", first=91, last=95, reason="double counting")  # held by dev1
    b.add("mee", "cancel_offsets", "serial_final", first=91, last=91, reason="x")
    b.add("mee", "unfreeze_offsets", "serial_final", first=186, last=186, reason="x")
    return b


# --- block 4: allowance transfers and the order book --------------------------------------------------------------


def _market() -> ScriptBlock:
    b = ScriptBlock(4_000)
    b.add("ent1", "transfer_allowances", "self_transfer", to="ent1", amount_t=1)
    b.add("ent1", "transfer_allowances", "unknown_org", to="ghost", amount_t=1)
    b.add("ent1", "transfer_allowances", "wrong_role", to="dev1", amount_t=1)
    b.add("ent1", "transfer_allowances", "insufficient_balance", to="ent2", amount_t=1001)
    b.add("ver1", "transfer_allowances", "forbidden", to="ent2", amount_t=1)
    b.add("ent1", "transfer_allowances", to="ent2", amount_t=10)
    b.add("ent1", "set_reference_price", "forbidden", price_fen=5000)
    # bounds are rounded inwards: around 5005 the band is ceil(4504.5) = 4505 .. floor(5505.5) = 5505
    b.add("mee", "set_reference_price", price_fen=5005)
    b.add("ent1", "place_order", "price_out_of_band", side="sell", quantity_t=1, price_fen=5506)
    b.add("ent1", "place_order", "price_out_of_band", side="buy", quantity_t=1, price_fen=4504)
    b.add("mee", "set_reference_price", price_fen=5000)
    # band around 5000: listed 4500..5500, block trades (>= 500 t) 3500..6500
    b.add("ver1", "place_order", "forbidden", side="buy", quantity_t=1, price_fen=5000)
    b.add("ent1", "place_order", "price_out_of_band", side="sell", quantity_t=1, price_fen=5501)
    b.add("ent1", "place_order", "price_out_of_band", side="buy", quantity_t=1, price_fen=4499)
    b.add("ent3", "place_order", side="sell", quantity_t=500, price_fen=6400)  # a block trade, rests (1)
    b.add("ent1", "place_order", "insufficient_cash", side="buy", quantity_t=2_000, price_fen=5000)
    b.add("ent1", "place_order", "insufficient_balance", side="sell", quantity_t=1_001, price_fen=5000)
    # ent3 sells 100 at 50.50; ent2 bids 51.00 and trades at 50.50 (its improvement is unlocked)
    b.add("ent3", "place_order", side="sell", quantity_t=100, price_fen=5050)  # (2)
    b.add("ent2", "place_order", side="buy", quantity_t=100, price_fen=5100)  # (3) fills at 5050
    b.add(
        "ent2", "transfer_allowances", to="ent3", amount_t=10
    )  # its own leave first: none of the 100 bought
    # ent4 holds only allowances bought today: it cannot sell them today
    b.add("ent1", "place_order", side="sell", quantity_t=20, price_fen=5000)  # (4)
    b.add("ent4", "place_order", side="buy", quantity_t=20, price_fen=5000)  # (5) fills
    b.add("ent4", "place_order", "not_tradable_today", side="sell", quantity_t=1, price_fen=5000)
    b.add("ent4", "place_order", "insufficient_balance", side="sell", quantity_t=21, price_fen=5000)
    b.add("ent4", "transfer_allowances", to="ent5", amount_t=5)  # fresh ones move and stay fresh at ent5
    b.add("ent5", "place_order", "not_tradable_today", side="sell", quantity_t=5, price_fen=5000)
    # three resting sells of ent1 (the limit), then a buy that matches only two of them (match_max)
    b.add("ent1", "place_order", side="sell", quantity_t=5, price_fen=5400)  # (6)
    b.add("ent1", "place_order", side="sell", quantity_t=5, price_fen=5450)  # (7)
    b.add("ent1", "place_order", side="sell", quantity_t=5, price_fen=5480)  # (8)
    b.add("ent1", "place_order", "limit_exceeded", side="sell", quantity_t=1, price_fen=5000)
    b.add("ent2", "place_order", side="buy", quantity_t=12, price_fen=5500)  # (9): 5 + 5, rests 2 at 5500
    b.add("ent1", "place_order", side="buy", quantity_t=1, price_fen=5480)  # (10): skips its own sell, rests
    b.add("ent1", "cancel_order", order=10)
    b.add("ent2", "cancel_order", order=9)  # returns the lock of its 2 t at 5500
    # a frozen owner's resting order is skipped, not cancelled
    b.add("ent3", "place_order", side="sell", quantity_t=3, price_fen=5300)  # (11)
    b.add("mee", "freeze_account", org="ent3", reason="investigation")
    b.add("ent2", "place_order", side="buy", quantity_t=3, price_fen=5300)  # (12) skips 11, rests
    b.add("ent3", "cancel_order", order=11)  # allowed while frozen
    b.add("mee", "unfreeze_account", org="ent3", reason="closed")
    b.add("ent2", "cancel_order", order=12)
    b.add("ent1", "cancel_order", "forbidden", order=12)  # ent2's
    b.add("aud", "cancel_order", "forbidden", order=8)
    b.add("ent1", "cancel_order", "unknown_order", order=99)
    b.add("ent1", "cancel_order", "order_closed", order=6)  # filled
    b.add("ent1", "cancel_order", "order_closed", order=10)  # cancelled
    return b


# --- block 5: emission reports and verification -------------------------------------------------------------------


def _reports() -> ScriptBlock:
    b = ScriptBlock(50_000)
    b.add("ent1", "submit_report", period="2025", emissions_kg=1_050_400, evidence_hash=EVIDENCE)
    b.add(
        "ent1", "submit_report", period="2025", emissions_kg=1_049_500, evidence_hash="cd" * 32
    )  # v2, 1050 t
    b.add("ver1", "submit_report", "forbidden", period="2025", emissions_kg=1, evidence_hash=EVIDENCE)
    b.add("ent1", "submit_report", "unknown_period", period="1999", emissions_kg=1, evidence_hash=EVIDENCE)
    b.add("ent2", "submit_report", period="2025", emissions_kg=900_000, evidence_hash=EVIDENCE)
    b.add("ent3", "submit_report", period="2025", emissions_kg=1_500_499, evidence_hash=EVIDENCE)
    b.add(
        "ent4", "submit_report", period="2025", emissions_kg=10_000, evidence_hash=EVIDENCE
    )  # never verified
    b.add("ent2", "surrender_offsets", "no_verified_emissions", period="2025", first=61, last=61)
    b.add("ent1", "verify_report", "forbidden", period="2025", org="ent1", verified_t=1050,
          opinion="satisfactory", evidence_hash=EVIDENCE)  # fmt: skip
    b.add("ver2", "verify_report", "not_accredited", period="2025", org="ent1", verified_t=1050,
          opinion="satisfactory", evidence_hash=EVIDENCE)  # fmt: skip
    b.add(
        "ver2",
        "verify_report",
        "not_accredited",
        period="2025",
        org="ver2",
        verified_t=1,
        opinion="satisfactory",
        evidence_hash=EVIDENCE,
    )  # fmt: skip  accreditation before own_report
    b.add("mee", "accredit_verifier", org="ver2")
    b.add("ver1", "verify_report", "own_report", period="2025", org="ver1", verified_t=1,
          opinion="satisfactory", evidence_hash=EVIDENCE)  # fmt: skip
    b.add("ver1", "verify_report", "unknown_period", period="1999", org="ent1", verified_t=1,
          opinion="satisfactory", evidence_hash=EVIDENCE)  # fmt: skip
    b.add("ver1", "verify_report", "unknown_report", period="2025", org="ent5", verified_t=1,
          opinion="satisfactory", evidence_hash=EVIDENCE)  # fmt: skip
    b.add("ver1", "verify_report", period="2025", org="ent1", verified_t=1050, opinion="satisfactory",
          evidence_hash="ef" * 32)  # fmt: skip
    b.add("ver2", "verify_report", "already_verified", period="2025", org="ent1", verified_t=1050,
          opinion="satisfactory", evidence_hash=EVIDENCE)  # fmt: skip
    b.add("ent1", "submit_report", "already_verified", period="2025", emissions_kg=1, evidence_hash=EVIDENCE)
    b.add(
        "ver1",
        "verify_report",
        "material_misstatement",
        period="2025",
        org="ent2",
        verified_t=946,
        opinion="satisfactory",
        evidence_hash=EVIDENCE,
    )  # fmt: skip  |946 - 900| x 10^4 > 900 x 500
    b.add("ver1", "verify_report", period="2025", org="ent2", verified_t=946,
          opinion="satisfactory_with_comments", evidence_hash=EVIDENCE)  # fmt: skip
    b.add("mee", "freeze_account", org="ver2", reason="conflict of interest")
    b.add("ver2", "verify_report", "frozen", period="2025", org="ent3", verified_t=1500,
          opinion="satisfactory", evidence_hash=EVIDENCE)  # fmt: skip
    b.add(
        "ver3",
        "verify_report",
        period="2025",
        org="ent3",
        verified_t=1525,
        opinion="satisfactory",
        evidence_hash=EVIDENCE,
    )  # fmt: skip  |1525 - 1500| x 10^4 = 250000 <= 1500 x 500 = 750000
    return b


# --- block 6: after the reporting deadline: surrenders --------------------------------------------------------------


def _surrenders() -> ScriptBlock:
    b = ScriptBlock(150_000)
    b.add("ent2", "submit_report", "deadline_passed", period="2025", emissions_kg=1, evidence_hash=EVIDENCE)
    b.add("mee", "extend_period", "deadline_passed", period="2025-ext", reporting_deadline_ms=at(100_000),
          surrender_deadline_ms=at(300_000))  # fmt: skip
    b.add("ver1", "surrender_allowances", "forbidden", period="2025", amount_t=1)
    b.add("ent1", "surrender_allowances", "unknown_period", period="1999", amount_t=1)
    b.add("ent1", "surrender_allowances", "insufficient_balance", period="2025", amount_t=956)
    b.add("ent1", "surrender_allowances", period="2025", amount_t=955)  # 5 more are locked in order 8
    b.add("ent2", "surrender_allowances", period="2025", amount_t=800)
    b.add("ent3", "surrender_allowances", period="2025", amount_t=1530)
    # offsets: ent1's cap is floor(1050 x 500 / 10000) = 52 t
    b.add("aud", "surrender_offsets", "forbidden", period="2025", first=1, last=1)
    b.add("ent1", "surrender_offsets", "unknown_period", period="1999", first=1, last=1)
    b.add("ent1", "surrender_offsets", period="2025", first=1, last=10)
    b.add("ent1", "surrender_offsets", period="2025", first=11, last=50)
    b.add("ent1", "surrender_offsets", "offset_cap_exceeded", period="2025", first=51, last=53)
    b.add("ent1", "surrender_offsets", "serial_final", period="2025", first=5, last=5)
    b.add("ent1", "surrender_offsets", "not_holder", period="2025", first=100, last=100)
    b.add("ent1", "surrender_offsets", "range_not_in_block", period="2025", first=52, last=51)
    b.add("ent1", "surrender_offsets", "range_not_in_block", period="2025", first=55, last=61)
    b.add("ent1", "surrender_offsets", "unknown_serial", period="2025", first=777, last=777)
    b.add("mee", "freeze_offsets", first=51, last=51, reason="disputed")
    b.add("ent1", "surrender_offsets", "serial_frozen", period="2025", first=51, last=51)
    b.add("ent2", "surrender_offsets", period="2025", first=61, last=61)
    return b


# --- block 7: after the surrender deadline: settlement and closing --------------------------------------------------


def _settlement() -> ScriptBlock:
    b = ScriptBlock(250_000)
    b.add("ent1", "surrender_allowances", "deadline_passed", period="2025", amount_t=1)
    b.add("ent1", "surrender_offsets", "deadline_passed", period="2025", first=52, last=52)
    b.add("ent1", "settle_period", "forbidden", period="2025", org="ent1")
    b.add("mee", "settle_period", "unknown_period", period="1999", org="ent1")
    b.add("mee", "settle_period", "unknown_org", period="2025", org="ghost")
    b.add("mee", "settle_period", "wrong_role", period="2025", org="dev1")
    b.add("mee", "settle_period", period="2025", org="ent1")  # 955 + 50 - 1050: shortfall 45, China rule
    b.add("mee", "settle_period", "already_settled", period="2025", org="ent1")
    b.add("mee", "settle_period", period="2025", org="ent2")  # 800 + 1 - 946: shortfall 145, China rule
    b.add("mee", "settle_period", period="2025", org="ent3")  # 1530 - 1525: surplus 5, banked
    b.add("mee", "settle_period", period="2025", org="ent4")  # no verified emissions: blocked
    b.add("mee", "settle_period", period="2025", org="ent5")  # nothing at all: a new row, blocked
    b.add("ver1", "verify_report", "already_settled", period="2025", org="ent4", verified_t=10,
          opinion="satisfactory", evidence_hash=EVIDENCE)  # fmt: skip
    b.add("ent4", "place_order", "frozen", side="buy", quantity_t=1, price_fen=5000)  # blocked
    b.add("ent4", "submit_report", "deadline_passed", period="2025", emissions_kg=1, evidence_hash=EVIDENCE)
    b.add("mee", "unfreeze_account", org="ent4", reason="report received")
    b.add("mee", "unfreeze_account", org="ent5", reason="new member, nothing to report")
    b.add("mee", "close_period", period="2025")
    b.add("mee", "close_period", "period_closed", period="2025")
    b.add("mee", "close_period", period="2025-ext")
    b.add("mee", "extend_period", "period_closed", period="2025-ext", reporting_deadline_ms=at(100_000),
          surrender_deadline_ms=at(300_000))  # fmt: skip
    b.add("mee", "allocate", "period_closed", period="2025", org="ent1", amount_t=1)
    b.add("ent1", "submit_report", "period_closed", period="2025", emissions_kg=1, evidence_hash=EVIDENCE)
    b.add("ver1", "verify_report", "period_closed", period="2025", org="ent1", verified_t=1,
          opinion="satisfactory", evidence_hash=EVIDENCE)  # fmt: skip
    b.add("ent1", "surrender_allowances", "period_closed", period="2025", amount_t=1)
    b.add("ent1", "surrender_offsets", "period_closed", period="2025", first=52, last=52)
    return b


# --- block 8: the next trading day, and a period under the EU rule --------------------------------------------------


def _second_period() -> ScriptBlock:
    b = ScriptBlock(DAY_MS)  # 2026-01-02 08:00 CST: a new trading day
    b.add("mee", "open_period", period="2026", reporting_deadline_ms=at(DAY_MS + 100_000),
          surrender_deadline_ms=at(DAY_MS + 200_000), penalty_rule="eu", penalty_fen_per_t=20_000,
          offset_cap_bps=1000)  # fmt: skip
    b.add("mee", "allocate", period="2026", org="ent2", amount_t=100)  # 100 of ent2's 145 t deduction
    b.add("mee", "allocate", period="2026", org="ent2", amount_t=100)  # the other 45, then 55 granted
    b.add("mee", "allocate", period="2026", org="ent3", amount_t=500)
    # yesterday's allowances are tradable today; the reference is yesterday's close (5450)
    b.add("ent4", "place_order", side="sell", quantity_t=15, price_fen=5900)  # (13) band 4905..5995
    b.add("ent4", "place_order", "price_out_of_band", side="sell", quantity_t=1, price_fen=5996)
    b.add("ent5", "place_order", side="sell", quantity_t=5, price_fen=5800)  # (14)
    # a block-trade bid trades with ent1's 5 t at 5480 (the day's first trade: the reference rolls to
    # yesterday's close), passes over the sells of the frozen ent5 and ent4, and having skipped
    # match_skip_max (2) stops before ent3's sell at 6400 it could trade with; it rests
    b.add("mee", "freeze_account", org="ent4", reason="x")
    b.add("mee", "freeze_account", org="ent5", reason="x")
    b.add("ent2", "place_order", side="buy", quantity_t=500, price_fen=6400)  # (15) band 3815..7085
    b.add("ent2", "cancel_order", order=15)
    b.add("mee", "unfreeze_account", org="ent4", reason="x")
    b.add("mee", "unfreeze_account", org="ent5", reason="x")
    # matches ent5's 5 t at 5800 and ent4's 15 t at 5900, then stops (match_max 2) and rests 5 t
    b.add("ent3", "place_order", side="buy", quantity_t=25, price_fen=5990)  # (16)
    # a sell that partly fills the resting buy, at the resting price: 5 left, then 1
    b.add("ent2", "place_order", side="sell", quantity_t=4, price_fen=5500)  # (17) trades 4 at 5990
    b.add("ent1", "submit_report", period="2026", emissions_kg=400_000, evidence_hash=EVIDENCE)
    b.add("ent3", "submit_report", period="2026", emissions_kg=600_000, evidence_hash=EVIDENCE)
    b.add("ver1", "verify_report", period="2026", org="ent1", verified_t=0, opinion="not_satisfactory",
          evidence_hash=EVIDENCE)  # fmt: skip
    b.add("ent1", "submit_report", "already_verified", period="2026", emissions_kg=1, evidence_hash=EVIDENCE)
    b.add("ver3", "verify_report", period="2026", org="ent3", verified_t=600, opinion="satisfactory",
          evidence_hash=EVIDENCE)  # fmt: skip
    b.add("ent3", "surrender_allowances", period="2026", amount_t=500)
    b.add("ent1", "transfer_offsets", first=52, last=60, to="ent3")
    b.add("ent3", "surrender_offsets", period="2026", first=52, last=60)
    # above 500,000 t the materiality level is 2%: 612,001 t against 600,000 t reported is material
    b.add("ent2", "submit_report", period="2026", emissions_kg=600_000_000, evidence_hash=EVIDENCE)
    b.add("ver1", "verify_report", "material_misstatement", period="2026", org="ent2", verified_t=612_001,
          opinion="satisfactory", evidence_hash=EVIDENCE)  # fmt: skip
    b.add("ver1", "verify_report", period="2026", org="ent2", verified_t=612_000, opinion="satisfactory",
          evidence_hash=EVIDENCE)  # fmt: skip
    # a penalty beyond 2^62 fen cannot be recorded: the settlement fails (it used to halt the chain)
    b.add("mee", "open_period", period="2026-x", reporting_deadline_ms=at(DAY_MS + 100_000),
          surrender_deadline_ms=at(DAY_MS + 200_000), penalty_fen_per_t=10**9)  # fmt: skip
    b.add("ent4", "submit_report", period="2026-x", emissions_kg=10**15, evidence_hash=EVIDENCE)
    b.add("ver1", "verify_report", period="2026-x", org="ent4", verified_t=10**12,
          opinion="satisfactory_with_comments", evidence_hash=EVIDENCE)  # fmt: skip
    return b


def _second_settlement() -> ScriptBlock:
    b = ScriptBlock(DAY_MS + 250_000)
    b.add("mee", "settle_period", period="2026", org="ent3")  # 500 + 9 + 5 banked - 600: EU shortfall 86
    b.add("mee", "settle_period", period="2026", org="ent1")  # rejected report: blocked
    b.add("mee", "settle_period", "overflow", period="2026-x", org="ent4")  # 10^12 t x 10^9 fen
    b.add("mee", "unfreeze_account", org="ent1", reason="resolved")
    b.add("ent1", "withdraw_cash", "forbidden", org="ent1", amount_fen=1, bank_ref="OUT-3")
    b.add("bank", "withdraw_cash", org="ent1", amount_fen=1, bank_ref="OUT-3")
    return b
