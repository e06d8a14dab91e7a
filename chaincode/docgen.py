"""Generate the function, query and parameter reference of docs/CHAINCODE.md from the specs.

.venv/bin/python -m chaincode.docgen > /tmp/reference.md
"""

from __future__ import annotations

from chaincode.base import Arg
from chaincode.carbon import FUNCTIONS
from chaincode.params import PARAMETERS
from chaincode.queries import QUERIES


def _arg_line(arg: Arg) -> str:
    unit = f" [{arg.unit}]" if arg.unit else ""
    optional = "" if arg.required else f" (optional, default {arg.default!r})"
    bounds = f" {arg.minimum}..{arg.maximum}" if arg.kind in ("int", "int_list") else ""
    choices = f" one of {', '.join(arg.choices)}" if arg.choices else ""
    return f"  - `{arg.name}`: {arg.kind}{bounds}{choices}{unit}{optional}: {arg.description}"


def render_reference() -> str:
    lines = ["### Functions", ""]
    for spec in FUNCTIONS.values():
        flags = []
        if spec.admin_only:
            flags.append("admin key required")
        flags.append(
            "allowed while frozen/blocked" if spec.frozen_ok else "sender must not be frozen/blocked"
        )
        lines += [
            f"#### `{spec.name}`",
            "",
            spec.description,
            "",
            f"- Who: {', '.join(spec.roles)} ({'; '.join(flags)})",
            "- Arguments:" if spec.args else "- Arguments: none",
            *[_arg_line(arg) for arg in spec.args],
            f"- Events: {', '.join(event.type for event in spec.events) or 'none'}",
            f"- Failure codes: {', '.join(spec.failures)}",
            "",
        ]
    lines += ["### Queries", ""]
    for query in QUERIES.values():
        lines += [f"#### `{query.name}`", "", query.description, ""]
        lines += [_arg_line(arg) for arg in query.params] or ["  - no parameters"]
        lines.append("")
    lines += [
        "### Parameters (genesis `chaincode.carbon`)",
        "",
        "| name | default | range |",
        "|---|---|---|",
    ]
    for p in PARAMETERS:
        allowed = ", ".join(p.choices) if p.choices else f"{p.minimum}..{p.maximum}"
        lines.append(f"| `{p.name}` | {p.default} | {allowed} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
