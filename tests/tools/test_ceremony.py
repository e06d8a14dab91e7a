"""The ceremony's commands refuse every wrong input file with one line naming the file and the field, and a
genesis that does not have a member exactly as its member file says (through the CLI entry point)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from cli import main


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def fails_with(result: Result, text: str) -> None:
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output and text in result.output, result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) <= 3, result.output


@pytest.fixture
def members(tmp_path: Path) -> Path:
    for index, (org, role) in enumerate((("mee", "regulator"), ("bank", "settlement_bank"))):
        result = run(
            "member", "init", "--dir", str(tmp_path / org), "--org", org, "--name", org.upper(), "--role", role,
            "--validator", f"127.0.0.1:{17100 + index}", f"127.0.0.1:{17200 + index}", "--no-encrypt",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    return tmp_path


def assemble(folder: Path, *member_files: Path) -> Result:
    args = [arg for path in member_files for arg in ("--member", str(path))]
    return run(
        "genesis", "assemble", *args, "--chain-id", "carbon-pilot", "--out", str(folder / "genesis.json")
    )


def edit(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_member_files_are_validated_strictly(members: Path) -> None:
    bank = members / "bank" / "member.json"
    edit(bank, lambda d: d["org"].update(role="bank"))
    fails_with(
        assemble(members, members / "mee" / "member.json", bank),
        f"{bank}: org.role: Value error, unknown role",
    )
    edit(bank, lambda d: (d["org"].update(role="settlement_bank"), d.update(extra=1)))
    fails_with(assemble(members, bank), f"{bank}: extra: unknown field")
    edit(bank, lambda d: (d.pop("extra"), d["nodes"][0].pop("peer_address")))
    fails_with(assemble(members, bank), "a validator needs a peer_address")
    bank.write_text('{"carbonchain_member": 1, "carbonchain_member": 1}')
    fails_with(assemble(members, bank), "the field 'carbonchain_member' is given twice")
    bank.write_text("not json")
    fails_with(assemble(members, bank), f"{bank}: not a JSON member file")
    bank.write_text(" " * 70_000)
    fails_with(assemble(members, bank), "larger than 65536 bytes")
    fails_with(assemble(members, members / "nope.json"), "no such member file")


def test_two_members_may_not_share_an_id_a_key_or_an_address(members: Path) -> None:
    mee, bank = members / "mee" / "member.json", members / "bank" / "member.json"
    edit(bank, lambda d: d["nodes"][0].update(api_address="127.0.0.1:17200"))
    fails_with(assemble(members, mee, bank), f"{bank} and {mee} both name the address 127.0.0.1:17200")
    fails_with(assemble(members, mee, mee), f"{mee} is given twice")
    copy = members / "copy.json"
    copy.write_text(mee.read_text())
    fails_with(assemble(members, mee, copy), f"{copy} and {mee} both name the organisation id mee")


def test_a_genesis_must_have_the_member_exactly(members: Path) -> None:
    mee, bank = members / "mee" / "member.json", members / "bank" / "member.json"
    assert assemble(members, mee, bank).exit_code == 0
    genesis = members / "genesis.json"
    verified = run("genesis", "verify", str(genesis), "--member", str(bank))
    assert verified.exit_code == 0 and "our validator 1: peer 127.0.0.1:17101" in verified.output
    original = genesis.read_text()
    edit(genesis, lambda d: d["organisations"][1].update(admin_keys=["ab" * 32]))
    fails_with(
        run("genesis", "verify", str(genesis), "--member", str(bank)),
        "describes organisation 'bank' differently: admin_keys",
    )
    genesis.write_text(original)
    edit(genesis, lambda d: d["validators"][1].update(api_address="127.0.0.1:17299"))
    fails_with(
        run("genesis", "verify", str(genesis), "--member", str(bank)), "validator 1 has other addresses"
    )
    genesis.write_text(original)
    edit(genesis, lambda d: d["validators"][1].update(node_key="cd" * 32))
    fails_with(
        run(
            "node",
            "init",
            "--genesis",
            str(genesis),
            "--member-dir",
            str(members / "bank"),
            "--home",
            str(members / "h"),
        ),
        "the genesis has no validator with our node key",
    )
    assert not (members / "h").exists()


def test_node_init_makes_a_home_once(members: Path) -> None:
    mee, bank = members / "mee" / "member.json", members / "bank" / "member.json"
    assert assemble(members, mee, bank).exit_code == 0
    args = ["node", "init", "--genesis", str(members / "genesis.json"), "--member-dir", str(members / "mee"),
            "--home", str(members / "mee" / "node")]  # fmt: skip
    made = run(*args)
    assert made.exit_code == 0 and "validator 0 of chain carbon-pilot" in made.output
    config = (members / "mee" / "node" / "config.toml").read_text()
    assert 'role = "validator"' in config and "index = 0" in config
    fails_with(run(*args), "is not empty: a node home is made once")
    again = run("member", "init", "--dir", str(members / "mee"), "--org", "mee", "--name", "M", "--role",
                "regulator", "--no-encrypt")  # fmt: skip
    fails_with(again, "already holds a member's keys")
