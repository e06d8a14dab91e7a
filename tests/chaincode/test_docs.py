"""docs/CHAINCODE.md agrees with the declarations the chaincode runs with (chaincode.docgen)."""

from __future__ import annotations

import re

import pytest

from chaincode.carbon import FUNCTIONS
from chaincode.docgen import (
    DOCUMENT,
    FUNCTIONS_END,
    STEPS_PLACEHOLDER,
    DocumentError,
    find_function_sections,
    update_document,
)
from chaincode.executor import EXECUTOR_CODES
from chaincode.ledger import Code

ALL_CODES = {value for name, value in vars(Code).items() if name.isupper()} | set(EXECUTOR_CODES)
COMMON = {Code.FORBIDDEN, Code.NOT_ADMIN, Code.FROZEN}  # made by the checks of section 2.1 for every function


def test_the_generated_parts_are_up_to_date() -> None:
    text = DOCUMENT.read_text(encoding="utf-8")
    assert update_document(text) == text, "run: python -m chaincode.docgen --write"


def test_every_function_has_its_steps_and_they_name_exactly_its_failure_codes() -> None:
    sections = find_function_sections(DOCUMENT.read_text(encoding="utf-8"))
    assert list(sections) == list(FUNCTIONS), "each function once, in declaration order"
    for name, steps in sections.items():
        assert STEPS_PLACEHOLDER not in steps, f"{name}: its steps are still to be written"
        assert re.search(r"^1\. ", steps, re.MULTILINE), f"{name}: no numbered steps"
        named = set(re.findall(r"`([a-z_]+)`(?!\s*=)", steps)) & ALL_CODES  # not "`frozen` = true"
        declared = set(FUNCTIONS[name].failures)
        assert named <= declared, f"{name}: the steps name undeclared codes {sorted(named - declared)}"
        missing = declared - named - COMMON
        assert not missing, f"{name}: the steps never say when it fails with {sorted(missing)}"


def test_a_newly_declared_function_gets_a_header_and_a_placeholder() -> None:
    text = DOCUMENT.read_text(encoding="utf-8")
    start = text.index("<!-- generated:function:set_reference_price -->")
    end = text.index(FUNCTIONS_END)
    without = text[:start] + text[end:]
    regenerated = update_document(without)
    assert "### `set_reference_price`" in regenerated
    assert STEPS_PLACEHOLDER + "\n" + FUNCTIONS_END in regenerated


def test_a_region_for_an_undeclared_function_is_an_error() -> None:
    stale = "<!-- generated:function:mint_money -->\n<!-- end generated:function:mint_money -->\n"
    with pytest.raises(DocumentError, match="mint_money"):
        update_document(stale + FUNCTIONS_END + "\n")
