"""Network initialisation: a complete network's genesis, node homes and organisation keys.

`build_network` is pure (it returns what to write); `write_network` writes it. With `insecure_dev_keys` every
key comes from a public label (core.devkeys) and the chain id must mark a devnet; otherwise keys are random.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.devkeys import dev_admin_key, dev_client_key, dev_node_key, is_devnet_chain_id
from core.errors import ConfigError
from core.genesis import Genesis, Role, genesis_to_json, parse_genesis
from core.keys import SigningKey
from core.keystore import save_key
from node.config import ApiSection, NodeConfig, NodeSection, PeerSection, write_config

# The demo consortium: (id, name, role). Validators are run by the first members in this order.
DEFAULT_ORGANISATIONS: tuple[tuple[str, str, Role], ...] = (
    ("mee", "Ministry of Ecology and Environment", Role.REGULATOR),
    ("bank", "Carbon Settlement Bank", Role.SETTLEMENT_BANK),
    ("verifier-a", "Accredited Verifier A", Role.VERIFIER),
    ("ent-a", "Enterprise A Power", Role.ENTERPRISE),
    ("ent-b", "Enterprise B Steel", Role.ENTERPRISE),
    ("ent-c", "Enterprise C Cement", Role.ENTERPRISE),
    ("dev-a", "Offset Developer A", Role.OFFSET_DEVELOPER),
    ("verifier-b", "Accredited Verifier B", Role.VERIFIER),
    ("auditor", "Independent Auditor", Role.AUDITOR),
)
DEVNET_GENESIS_TIME = "2026-01-01T00:00:00Z"


@dataclass
class NetworkPlan:
    genesis: Genesis
    node_keys: dict[str, SigningKey]  # home folder name -> node key
    node_configs: dict[str, NodeConfig]
    org_keys: dict[str, dict[str, SigningKey]] = field(default_factory=dict)  # org -> {"admin", "client"}


def build_network(
    *,
    validators: int,
    observers: int,
    chain_id: str,
    genesis_time: str,
    host: str = "127.0.0.1",
    base_port: int = 7100,
    insecure_dev_keys: bool = False,
    consensus: dict[str, Any] | None = None,
) -> NetworkPlan:
    if not 1 <= validators <= 64 or not 0 <= observers <= 64:
        raise ConfigError("validators must be 1..64 and observers 0..64")
    if insecure_dev_keys and not is_devnet_chain_id(chain_id):
        raise ConfigError(
            f"insecure dev keys need a devnet chain id (e.g. 'carbon-devnet'), not {chain_id!r}"
        )
    if not 1024 <= base_port <= 65535 - 200:
        raise ConfigError("base port must be 1024..65335")

    def node_key(role: str, index: int) -> SigningKey:
        return dev_node_key(role, index) if insecure_dev_keys else SigningKey.generate()

    org_keys = {
        org_id: {
            "admin": dev_admin_key(org_id) if insecure_dev_keys else SigningKey.generate(),
            "client": dev_client_key(org_id) if insecure_dev_keys else SigningKey.generate(),
        }
        for org_id, _, _ in DEFAULT_ORGANISATIONS
    }
    members = [org_id for org_id, _, role in DEFAULT_ORGANISATIONS if role is not Role.AUDITOR]
    node_keys: dict[str, SigningKey] = {}
    configs: dict[str, NodeConfig] = {}
    validator_entries = []
    for i in range(validators):
        name = f"validator-{i}"
        node_keys[name] = node_key("validator", i)
        peer_port, api_port = base_port + i, base_port + 100 + i
        validator_entries.append(
            {
                "org": members[i % len(members)],
                "node_key": node_keys[name].public_key.hex(),
                "peer_address": f"{host}:{peer_port}",
                "api_address": f"{host}:{api_port}",
            }
        )
        configs[name] = NodeConfig(
            node=NodeSection(role="validator", index=i),
            peer=PeerSection(listen_host=host, listen_port=peer_port),
            api=ApiSection(listen_host=host, listen_port=api_port),
        )
    observer_entries = []
    for j in range(observers):
        name = f"observer-{j}"
        node_keys[name] = node_key("observer", j)
        api_port = base_port + 180 + j
        observer_entries.append(
            {"org": "mee", "node_key": node_keys[name].public_key.hex(), "api_address": f"{host}:{api_port}"}
        )
        configs[name] = NodeConfig(
            node=NodeSection(role="observer", index=j),
            api=ApiSection(listen_host=host, listen_port=api_port),
        )
    document = {
        "chain_id": chain_id,
        "genesis_time": genesis_time,
        "consensus": consensus or {},
        "validators": validator_entries,
        "observers": observer_entries,
        "organisations": [
            {
                "id": org_id,
                "name": name,
                "role": role.value,
                "admin_keys": [org_keys[org_id]["admin"].public_key.hex()],
            }
            for org_id, name, role in DEFAULT_ORGANISATIONS
        ],
        "chaincode": {"carbon": {}},
    }
    return NetworkPlan(parse_genesis(document), node_keys, configs, org_keys)


def write_network(plan: NetworkPlan, out: Path, *, overwrite: bool = False) -> list[Path]:
    """Write genesis.json, one home folder per node and keys/<org>/{admin,client}.json; returns node homes."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"{out} is not empty (pass --force to overwrite)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    genesis_text = genesis_to_json(plan.genesis)
    (out / "genesis.json").write_text(genesis_text, encoding="utf-8")
    homes = []
    for name, config in plan.node_configs.items():
        home = out / name
        home.mkdir(parents=True)
        (home / "genesis.json").write_text(genesis_text, encoding="utf-8")
        save_key(home / config.node.key_file, plan.node_keys[name], label=f"node {name}")
        write_config(home, config)
        homes.append(home)
    for org_id, keys in plan.org_keys.items():
        for kind, key in keys.items():
            label = f"{org_id} {kind}" + (
                " (enrol it with tx enrol_key before use)" if kind == "client" else ""
            )
            save_key(out / "keys" / org_id / f"{kind}.json", key, label=label)
    return homes
