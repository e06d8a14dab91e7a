"""Fixtures of the storage tests: a fresh store with a genesis state in a temporary directory."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from storagekit import GENESIS_HASH

from storage.store import Store

GENESIS_WRITES = {b"org/a": b"alpha", b"org/b": b"beta", b"param/x": b"1"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "node") as opened:
        opened.initialise_genesis(GENESIS_HASH, GENESIS_WRITES)
        yield opened
