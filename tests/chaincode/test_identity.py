"""Identity and access: organisations, keys, verifier accreditation, account freezes, role checks."""

from __future__ import annotations

from chainkit import Chain

from core.keys import SigningKey

NEW_ADMIN = SigningKey.from_insecure_label("newco-admin")


def test_register_organisation() -> None:
    chain = Chain()
    args = {
        "org": "newco",
        "name": "New Co",
        "role": "enterprise",
        "admin_keys": [NEW_ADMIN.public_key.hex()],
    }
    chain.fails("forbidden", "ent1", "register_organisation", **args)
    chain.ok("mee", "register_organisation", **args)
    assert chain.query("organisation", org="newco")["role"] == "enterprise"
    chain.fails("org_exists", "mee", "register_organisation", **args)
    dup = {**args, "org": "newco2", "admin_keys": [NEW_ADMIN.public_key.hex()] * 2}
    chain.fails("key_exists", "mee", "register_organisation", **dup)
    chain.keys["newco"] = NEW_ADMIN
    chain.ok("newco", "enrol_key", public_key=chain.client_key("newco").public_key.hex())


def test_register_needs_admin_key() -> None:
    chain = Chain()
    client = chain.client_key("mee")
    chain.ok("mee", "enrol_key", public_key=client.public_key.hex())
    result = chain.call(
        "mee",
        "register_organisation",
        key=client,
        org="x1",
        name="X",
        role="auditor",
        admin_keys=[NEW_ADMIN.public_key.hex()],
    )
    assert result.code == "not_admin"


def test_enrol_and_revoke_rules() -> None:
    chain = Chain()
    client = chain.client_key("ent1")
    chain.ok("ent1", "enrol_key", public_key=client.public_key.hex())
    chain.fails("key_exists", "ent1", "enrol_key", public_key=client.public_key.hex())
    # a client key is not an admin: it cannot enrol or revoke
    assert chain.call("ent1", "enrol_key", key=client, public_key="cd" * 32).code == "not_admin"
    # another organisation cannot revoke ent1's keys; the regulator can
    chain.fails("forbidden", "ent2", "revoke_key", org="ent1", public_key=client.public_key.hex())
    chain.ok("mee", "revoke_key", org="ent1", public_key=client.public_key.hex())
    chain.fails("key_revoked", "mee", "revoke_key", org="ent1", public_key=client.public_key.hex())
    chain.fails("key_revoked", "ent1", "enrol_key", public_key=client.public_key.hex())
    chain.fails("unknown_key", "ent1", "revoke_key", org="ent1", public_key="ef" * 32)
    chain.fails("unknown_org", "mee", "revoke_key", org="ghost", public_key="ef" * 32)
    chain.fails(
        "last_admin", "ent1", "revoke_key", org="ent1", public_key=chain.keys["ent1"].public_key.hex()
    )
    second = chain.client_key("ent1", 1)
    chain.ok("ent1", "enrol_key", public_key=second.public_key.hex(), admin=True)
    chain.ok("ent1", "revoke_key", org="ent1", public_key=chain.keys["ent1"].public_key.hex())
    keys = chain.query("keys", org="ent1")["items"]
    assert sorted(k["status"] for k in keys) == ["active", "revoked", "revoked"]


def test_key_limit() -> None:
    chain = Chain()
    for index in range(63):
        chain.ok("ent1", "enrol_key", public_key=SigningKey.from_insecure_label(f"k{index}").public_key.hex())
    chain.fails("limit_exceeded", "ent1", "enrol_key", public_key="12" * 32)


def test_accreditation() -> None:
    chain = Chain()
    chain.fails("forbidden", "ver1", "revoke_verifier", org="ver2")
    chain.fails("wrong_role", "mee", "accredit_verifier", org="ent1")
    chain.fails("unknown_org", "mee", "accredit_verifier", org="ghost")
    chain.ok("mee", "revoke_verifier", org="ver1")
    assert chain.query("organisation", org="ver1")["accredited"] is False
    chain.ok("mee", "accredit_verifier", org="ver1")
    assert chain.query("organisation", org="ver1")["accredited"] is True


def test_freeze_account_blocks_sending_but_not_surrender() -> None:
    chain = Chain()
    chain.open_period()
    chain.ok("mee", "allocate", period="2025", org="ent1", amount_t=100)
    chain.fails("forbidden", "ent2", "freeze_account", org="ent1", reason="theft")
    chain.fails("wrong_role", "mee", "freeze_account", org="mee", reason="no")
    chain.ok("mee", "freeze_account", org="ent1", reason="phishing")
    chain.fails("frozen", "ent1", "transfer_allowances", to="ent2", amount_t=1)
    chain.fails("frozen", "ent2", "transfer_allowances", to="ent1", amount_t=1)  # cannot receive either
    chain.fails("frozen", "ent1", "place_order", side="sell", quantity_t=1, price_fen=5000)
    chain.ok("ent1", "surrender_allowances", period="2025", amount_t=10)  # compliance stays possible
    chain.ok("mee", "unfreeze_account", org="ent1", reason="resolved")
    chain.ok("ent1", "transfer_allowances", to="ent2", amount_t=1)


def test_auditor_cannot_write() -> None:
    chain = Chain()
    chain.fails("forbidden", "aud", "transfer_allowances", to="ent2", amount_t=1)
    chain.fails(
        "forbidden", "aud", "open_period", period="x", reporting_deadline_ms=1, surrender_deadline_ms=2
    )
