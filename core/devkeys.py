"""Well-known insecure development keys, derived from public labels.

Like other chains' dev accounts, anyone can recompute these keys, so they are only allowed on a network
whose chain id marks it as a devnet: a hyphen-separated component equal to "devnet" (e.g. "carbon-devnet").
Labels: "validator-<i>", "observer-<i>", "org/<org id>/admin", "org/<org id>/client-<j>".
"""

from __future__ import annotations

from collections.abc import Iterable

from core.keys import SigningKey

DEV_NODE_LABELS_MAX = 64
DEV_CLIENT_LABELS_MAX = 16


def is_devnet_chain_id(chain_id: str) -> bool:
    return "devnet" in chain_id.split("-")


def dev_node_key(role: str, index: int) -> SigningKey:
    return SigningKey.from_insecure_label(f"{role}-{index}")


def dev_admin_key(org_id: str) -> SigningKey:
    return SigningKey.from_insecure_label(f"org/{org_id}/admin")


def dev_client_key(org_id: str, index: int = 0) -> SigningKey:
    return SigningKey.from_insecure_label(f"org/{org_id}/client-{index}")


def known_dev_public_keys(org_ids: Iterable[str]) -> set[bytes]:
    """Every insecure public key a genesis with these organisations could contain."""
    keys = {
        dev_node_key(role, i).public_key
        for role in ("validator", "observer")
        for i in range(DEV_NODE_LABELS_MAX)
    }
    for org_id in org_ids:
        keys.add(dev_admin_key(org_id).public_key)
        keys.update(dev_client_key(org_id, j).public_key for j in range(DEV_CLIENT_LABELS_MAX))
    return keys
