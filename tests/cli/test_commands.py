"""The CLI covers the chaincode: one `tx` command per function, one `query` command per query (introspection).

No network here: argument typing, help text, client-side argument checks, time parsing, one-line errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from chaincode import FUNCTIONS, QUERIES
from cli import COMMANDS, main
from commands.query import format_csv, format_table, main_table, render_text
from commands.report import COMPLIANCE_COLUMNS, compliance_text
from commands.tx import TimeMs, compute_args
from core.units import format_fen


def group(name: str) -> click.Group:
    command = main.get_command(click.Context(main), name)
    assert isinstance(command, click.Group)
    return command


def option_names(command: click.Command) -> set[str]:
    return {param.name for param in command.params if isinstance(param, click.Option) and param.name}


def test_every_chaincode_function_has_a_tx_command_with_every_argument() -> None:
    tx = group("tx")
    assert set(tx.commands) == set(FUNCTIONS) | {
        "show",
        "submit-file",
    }  # and the lookup and the file of calls
    for name, spec in FUNCTIONS.items():
        command = tx.commands[name]
        assert {arg.name for arg in spec.args} <= option_names(command), name
        assert {"key", "sender", "node", "wait", "as_json"} <= option_names(command)
        required = {p.name for p in command.params if isinstance(p, click.Option) and p.required}
        assert {arg.name for arg in spec.args if arg.required} <= required, name
        help_text = command.help or ""
        assert "Who may call it" in help_text and all(role in help_text for role in spec.roles), name
        for arg in spec.args:
            if arg.unit:
                assert arg.unit in help_text, (name, arg.name)


def test_every_chaincode_query_has_a_query_command_with_every_parameter() -> None:
    query = group("query")
    assert set(query.commands) == set(QUERIES)
    for name, spec in QUERIES.items():
        command = query.commands[name]
        assert {arg.name for arg in spec.params} <= option_names(command), name
        assert {"node", "as_json", "as_csv"} <= option_names(command)


def test_audit_and_report_commands_exist() -> None:
    assert set(group("audit").commands) >= {"verify", "history", "proof", "receipt"}
    assert set(group("report").commands) >= {"compliance", "retirement"}
    assert "dev" in group("keys").commands


def test_dashes_work_for_underscores_in_command_names() -> None:
    result = CliRunner().invoke(main, ["tx", "place-order", "--help"])
    assert result.exit_code == 0 and "--price-fen" in result.output and "fen/t" in result.output


def test_arguments_are_checked_against_the_spec_before_signing() -> None:
    spec = FUNCTIONS["register_organisation"]
    args = compute_args(
        spec, {"org": "x-1", "name": "X", "role": "enterprise", "admin_keys": ("aa" * 32 + "," + "bb" * 32,)}
    )
    assert args["admin_keys"] == ["aa" * 32, "bb" * 32]
    with pytest.raises(Exception, match="admin_keys"):
        compute_args(spec, {"org": "x-1", "name": "X", "role": "enterprise", "admin_keys": ("nothex",)})


def test_public_keys_can_come_from_key_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keys", "dev", "ent-a", "--out", str(tmp_path / "k.json")])
    assert result.exit_code == 0, result.output
    public = json.loads((tmp_path / "k.json").read_text())["public_key"]
    args = compute_args(FUNCTIONS["enrol_key"], {"public_key": f"@{tmp_path / 'k.json'}", "admin": None})
    assert args == {"public_key": public}


def test_times_accept_ms_relative_and_iso() -> None:
    kind = TimeMs()
    assert kind.convert("1767225600000", None, None) == 1767225600000
    assert kind.convert("2026-01-01T00:00:00Z", None, None) == 1767225600000
    relative = kind.convert("+2m", None, None)
    assert abs(relative - kind.convert("+120s", None, None)) < 1000
    with pytest.raises(click.BadParameter):
        kind.convert("tomorrow", None, None)


def test_errors_are_one_line_without_traceback() -> None:
    result = CliRunner().invoke(main, ["query", "params", "--node", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.output.startswith("error: unreachable") and result.output.count("\n") == 1
    result = CliRunner().invoke(
        main, ["audit", "verify", "--node", "http://127.0.0.1:9", "--genesis", "genesis.json"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_a_bench_work_directory_that_does_not_exist_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--workdir", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_tables_csv_and_money() -> None:
    rows = [{"org": "a", "t": 5}, {"org": "bb", "t": 1000}]
    assert format_table(rows).splitlines()[2] == "a       5"
    assert format_csv(rows) == "org,t\na,5\nbb,1000"
    assert main_table("order_book", {"buy": [{"id": 1}], "sell": [{"id": 2}]}) == [
        {"side": "buy", "id": 1},
        {"side": "sell", "id": 2},
    ]
    assert "allowances_t.available: 3" in render_text({"allowances_t": {"available": 3}})
    assert format_fen(870000) == "8,700.00" and format_fen(-5) == "-0.05"


def test_compliance_report_shows_enterprises_without_a_verified_report() -> None:
    """Issue 18 problem 1: mid-year (no verified report yet) and after settling an unverified enterprise."""
    row = dict.fromkeys(COMPLIANCE_COLUMNS[1:-1], 0)
    document = {
        "period": {"id": "2026", "status": "open", "penalty_rule": "china", "penalty_fen_per_t": 10000},
        "rows": [
            {**row, "org": "ent-a", "allocated_t": 100, "verified_t": 90, "status": "open"},
            {**row, "org": "ent-b", "allocated_t": 50, "verified_t": None, "status": "blocked"},
        ],
    }
    lines = compliance_text(document).splitlines()
    ent_b = next(line for line in lines if line.startswith("ent-b"))
    assert ent_b.split() == ["ent-b", "50", "-", "0", "0", "0", "0", "0.00", "blocked"]
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert total.split()[:3] == ["TOTAL", "150", "90"]


def test_every_command_loads_and_a_command_imports_only_its_own_module() -> None:
    listing = CliRunner().invoke(main, ["--help"])
    assert listing.exit_code == 0
    for name in COMMANDS:
        assert name in listing.output
        assert main.get_command(click.Context(main), name) is not None, name
    probe = (
        "import sys, cli\n"
        "try:\n    cli.main(['tx', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('commands.audit', 'commands.bench', 'commands.ceremony') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    unknown = CliRunner().invoke(main, ["no-such-command"])
    assert unknown.exit_code == 2 and "No such command 'no-such-command'" in unknown.output
