"""Errors of the storage layer, each saying what went wrong with the data directory in words an operator can act on.

`StorageError` and its children are raised by `Store`; a node shell catches them at startup (locked, corrupt,
wrong schema) and stops with the message. `ProofError` is the one a client sees: a state proof that does not
verify is bad input, not our bug. `CommitRefused` means the node tried to commit out of order: our bug.
"""

from __future__ import annotations

from core.errors import CarbonchainError, InvalidInput, InvariantBroken, ResourceFailure


class StorageError(CarbonchainError):
    """Root of the errors raised by the LevelDB store."""


class StoreLocked(StorageError):
    """Another process (or another open Store in this process) holds the data directory."""


class StoreCorrupt(StorageError):
    """The database files or one of our records cannot be read back."""


class SchemaMismatch(StorageError):
    """The data directory was written with a schema version this code does not know."""


class StorageIOError(StorageError, ResourceFailure):
    """A read or write failed at the operating-system level (disk full, I/O error); nothing was half-written."""


class GenesisMismatch(StorageError):
    """The store was initialised with another genesis: the data directory belongs to another chain."""


class CommitRefused(StorageError, InvariantBroken):
    """The caller asked to commit a block that does not extend the stored chain: a bug in the caller."""


class ProofError(InvalidInput):
    """A state proof is malformed or does not lead to the claimed root."""
