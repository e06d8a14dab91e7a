"""The conformance chain's genesis: four validators, eleven organisations, four members, low limits; and its
dev keys.

Every key is a well-known development key (core.devkeys), so anyone can recompute every signature.
"""

from __future__ import annotations

from typing import Any

from core.devkeys import dev_admin_key, dev_client_key, dev_node_key

CHAIN_ID = "vectors-devnet"
GENESIS_TIME = "2026-01-01T00:00:00Z"  # 08:00 China Standard Time, trading day 20454
GENESIS_TIME_MS = 1_767_225_600_000
VALIDATORS = 4
DAY_MS = 86_400_000
EVIDENCE = "ab" * 32
ORGS = (
    ("mee", "MEE", "regulator"),
    ("bank", "Settlement Bank", "settlement_bank"),
    ("ent1", "Power Plant One", "enterprise"),
    ("ent2", "Steel Mill Two", "enterprise"),
    ("ent3", "Cement Works Three", "enterprise"),
    ("ent4", "Chemical Plant Four", "enterprise"),
    ("ver1", "Verifier One", "verifier"),
    ("ver2", "Verifier Two", "verifier"),
    ("dev1", "Wind Developer", "offset_developer"),
    ("dev2", "Solar Developer", "offset_developer"),
    ("aud", "Auditor", "auditor"),
)
PARAMS = {
    "open_orders_max": 3,
    "match_max": 2,
    "match_skip_max": 2,
    "keys_per_org_max": 4,
    "allocations_per_period_max": 2,
    "issuances_per_project_max": 2,
    "block_trade_min_t": 500,
    # four-eyes low enough to reach in a few transactions, above what blocks 1-6 move; freezes single-key
    # until block 7 switches them on
    "four_eyes_allowance_t": 100,
    "four_eyes_offset_t": 60,
    "four_eyes_cash_fen": 100_000,
    "four_eyes_order_t": 500,
    "four_eyes_allocation_t": 5_000,
    "four_eyes_freezes": "off",
    "four_eyes_window_blocks": 2,
    "open_requests_max": 2,
    "open_proposals_max": 2,
    "proposal_blocks_max": 100,
}
MEMBERS = ["mee", "bank", "ent1", "ver1"]  # four members: three approve a decision


def make_genesis_document() -> dict[str, Any]:
    return {
        "chain_id": CHAIN_ID,
        "genesis_time": GENESIS_TIME,
        # the fifth validator approved at height 7 comes into force at the earliest height the rule allows:
        # L = 13 = 7 + 2 * pipeline_depth + 2, a multiple of checkpoint_interval (docs/protocol/core.md 6.5)
        "consensus": {"pipeline_depth": 2, "checkpoint_interval": 13},
        "validators": [
            {
                "org": "mee",
                "node_key": dev_node_key("validator", index).public_key.hex(),
                "peer_address": f"127.0.0.1:{7000 + index}",
                "api_address": f"127.0.0.1:{8000 + index}",
            }
            for index in range(VALIDATORS)
        ],
        "organisations": [
            {"id": org, "name": name, "role": role, "admin_keys": [dev_admin_key(org).public_key.hex()]}
            for org, name, role in ORGS
        ],
        "chaincode": {"carbon": PARAMS},
        "governance": {"members": MEMBERS},
    }


def key_hex(org: str, key: str = "admin") -> str:
    if key == "admin":
        return dev_admin_key(org).public_key.hex()
    return dev_client_key(org, int(key.removeprefix("client-"))).public_key.hex()


def at(offset_ms: int) -> int:
    """An absolute block time (ms) at this offset from genesis time."""
    return GENESIS_TIME_MS + offset_ms
