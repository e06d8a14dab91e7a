"""`carbonchain init-network` and `carbonchain keys` through the real CLI entry point (click's CliRunner)."""

from __future__ import annotations

import json
import shlex
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import cli
from core.devkeys import dev_admin_key, dev_node_key
from core.genesis import load_genesis
from core.keystore import load_key
from node.config import load_config
from tools.bench.network import find_free_port_base
from tools.devnet import die_with_parent, is_endpoint_ok, stop_processes


def _run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli.main, args, env=env, catch_exceptions=False)


def _fails_cleanly(result: Result) -> None:
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("dev_keys", [False, True])
def test_init_network(tmp_path: Path, dev_keys: bool) -> None:
    out = tmp_path / "net"
    args = [
        "init-network",
        "--validators",
        "4",
        "--observers",
        "1",
        "--out",
        str(out),
        "--base-port",
        "17100",
    ]
    result = _run([*args, "--insecure-dev-keys"] if dev_keys else args)
    assert result.exit_code == 0, result.output

    genesis = load_genesis(out / "genesis.json")
    assert genesis.chain_id == "carbon-devnet"
    assert genesis.genesis_hash.hex() in result.output
    assert len(genesis.validators) == 4 and len(genesis.observers) == 1
    homes = {"validator-0", "validator-1", "validator-2", "validator-3", "observer-0"}
    assert homes <= {p.name for p in out.iterdir()}

    for name in sorted(homes):
        home = out / name
        config = load_config(home)
        role, index = name.split("-")
        assert config.node.role == role and config.node.index == int(index)
        assert load_genesis(home / config.node.genesis_file).genesis_hash == genesis.genesis_hash
        key_path = home / config.node.key_file
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
        node_key = load_key(key_path)
        entries = genesis.validators if role == "validator" else genesis.observers
        assert node_key.public_key == entries[int(index)].node_key_bytes
        if dev_keys:
            assert node_key.public_key == dev_node_key(role, int(index)).public_key
        if role == "validator":
            assert config.peer.listen_port == 17100 + int(index)
            assert genesis.validators[int(index)].peer_address == f"127.0.0.1:{17100 + int(index)}"

    for org in genesis.organisations:
        admin = load_key(out / "keys" / org.id / "admin.json")
        assert admin.public_key.hex() in org.admin_keys
        load_key(out / "keys" / org.id / "client.json")
    ent_a = bytes.fromhex(genesis.organisation("ent-a").admin_keys[0])  # type: ignore[union-attr]
    assert (ent_a == dev_admin_key("ent-a").public_key) is dev_keys


def test_dev_keys_need_a_devnet_chain_id(tmp_path: Path) -> None:
    out = tmp_path / "net"
    result = _run(["init-network", "--out", str(out), "--chain-id", "carbon-main", "--insecure-dev-keys"])
    _fails_cleanly(result)
    assert "devnet" in result.stderr
    assert not out.exists() or not any(out.iterdir())


def test_random_keys_on_a_production_chain_id(tmp_path: Path) -> None:
    out = tmp_path / "net"
    result = _run(["init-network", "--out", str(out), "--chain-id", "carbon-main", "--validators", "1"])
    assert result.exit_code == 0, result.output
    assert load_genesis(out / "genesis.json").chain_id == "carbon-main"


def test_refuses_non_empty_output(tmp_path: Path) -> None:
    out = tmp_path / "net"
    assert _run(["init-network", "--out", str(out), "--insecure-dev-keys"]).exit_code == 0
    _fails_cleanly(_run(["init-network", "--out", str(out), "--insecure-dev-keys"]))
    assert _run(["init-network", "--out", str(out), "--insecure-dev-keys", "--force"]).exit_code == 0


def test_genesis_validate_command(tmp_path: Path) -> None:
    out = tmp_path / "net"
    _run(["init-network", "--out", str(out), "--insecure-dev-keys"])
    result = _run(["genesis", "validate", str(out / "genesis.json")])
    assert result.exit_code == 0
    assert load_genesis(out / "genesis.json").genesis_hash.hex() in result.output
    broken = tmp_path / "broken.json"
    document = json.loads((out / "genesis.json").read_text())
    document["consensus"]["view_timeout_ms"] = 1.5
    broken.write_text(json.dumps(document))
    result = _run(["genesis", "validate", str(broken)])
    _fails_cleanly(result)
    assert "consensus.view_timeout_ms" in result.stderr


def test_keys_new_and_show_encrypted(tmp_path: Path) -> None:
    path = tmp_path / "me.json"
    env = {"CARBONCHAIN_PASSPHRASE": "s3cret"}
    created = _run(["keys", "new", "--out", str(path), "--label", "me"], env=env)
    assert created.exit_code == 0, created.output
    public_key = next(
        line.split()[-1] for line in created.output.splitlines() if line.startswith("public key:")
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "seed" not in json.loads(path.read_text())

    shown = _run(["keys", "show", str(path), "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["public_key"] == public_key and info["encrypted"] is True
    assert load_key(path, passphrase="s3cret").public_key.hex() == public_key


def test_keys_new_unencrypted(tmp_path: Path) -> None:
    path = tmp_path / "plain.json"
    assert _run(["keys", "new", "--out", str(path), "--no-encrypt"]).exit_code == 0
    shown = _run(["keys", "show", str(path), "--json"])
    assert json.loads(shown.stdout)["encrypted"] is False
    # An existing file is not overwritten without --force.
    assert _run(["keys", "new", "--out", str(path), "--no-encrypt"]).exit_code == 2


def test_keys_show_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "me.json"
    assert _run(["keys", "new", "--out", str(path)], env={"CARBONCHAIN_PASSPHRASE": "right"}).exit_code == 0
    result = _run(["keys", "show", str(path)], env={"CARBONCHAIN_PASSPHRASE": "wrong"})
    _fails_cleanly(result)
    assert "wrong passphrase" in result.stderr


def test_keys_show_passphrase_file(tmp_path: Path) -> None:
    path, secret = tmp_path / "me.json", tmp_path / "pass.txt"
    secret.write_text("from-a-file\n")
    assert _run(["keys", "new", "--out", str(path), "--passphrase-file", str(secret)]).exit_code == 0
    assert _run(["keys", "show", str(path), "--passphrase-file", str(secret)]).exit_code == 0


def test_keys_show_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    result = _run(["keys", "show", str(path)])
    _fails_cleanly(result)
    assert "corrupt" in result.stderr


def test_the_printed_step_makes_a_client_key_usable(tmp_path: Path) -> None:
    """Issue 18 problem 2: init-network's client keys are not enrolled; it says how, the refusal says how,
    and following the printed command (against a real node process) makes the key sign."""
    base = find_free_port_base(1)
    out = tmp_path / "net"
    made = _run(["init-network", "--validators", "1", "--observers", "0", "--out", str(out),
                 "--base-port", str(base), "--chain-id", "carbon-test"])  # fmt: skip
    assert made.exit_code == 0, made.output
    printed = next(line.strip() for line in made.output.splitlines() if "tx enrol_key" in line)
    org = printed.split("--as ")[1].split()[0]
    node = f"http://127.0.0.1:{base + 100}"
    client_key = out / "keys" / org / "client.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "node", "run", "--home", str(out / "validator-0")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    try:
        deadline = time.monotonic() + 30
        while not is_endpoint_ok(node, "/readyz"):
            assert process.poll() is None and time.monotonic() < deadline, "the node did not start"
            time.sleep(0.1)
        use = ["tx", "open_period", "--as", org, "--key", str(client_key), "--node", node, "--wait",
               "--period", "2030", "--reporting-deadline-ms", "+1d", "--surrender-deadline-ms", "+2d"]  # fmt: skip
        refused = CliRunner().invoke(cli.main, use)
        assert refused.exit_code == 1 and "unknown_sender" in refused.output
        assert (
            f"an admin of {org} enrols this key first: carbonchain tx enrol_key --as {org}" in refused.output
        )
        enrolled = CliRunner().invoke(cli.main, [*shlex.split(printed)[1:], "--node", node])
        assert enrolled.exit_code == 0 and "committed: tx" in enrolled.output, enrolled.output
        used = CliRunner().invoke(cli.main, use)
        assert used.exit_code == 0 and ": ok" in used.output, used.output
    finally:
        stop_processes([process])
