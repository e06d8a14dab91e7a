"""The error hierarchy: one root, and subclasses that say who is at fault.

`InvalidInput` and its children mean someone outside (a client, a peer, a file) sent something invalid:
reject it, log it, keep running. `InvariantBroken` means our own code is wrong: crash loudly.
`ResourceFailure` means the machine let us down (disk full, I/O error): nobody who sent us input is to blame.
"""

from __future__ import annotations


class CarbonchainError(Exception):
    """Root of every error carbonchain raises on purpose."""


class InvalidInput(CarbonchainError):
    """Input from outside is invalid; the sender is at fault, the node keeps running."""


class CodecError(InvalidInput):
    """Bytes are not a canonical encoding of an allowed value."""


class SignatureError(InvalidInput):
    """A signature does not verify, or a key or signature is malformed."""


class TransactionError(InvalidInput):
    """A transaction is rejected; `code` is a stable machine-readable reason (see docs/PROTOCOL.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class GenesisError(CarbonchainError):
    """The genesis document is invalid; the message names the field and the reason."""


class KeystoreError(CarbonchainError):
    """A key file cannot be read: missing, corrupt, or the passphrase is wrong."""


class ConfigError(CarbonchainError):
    """A node configuration file or command-line setting is invalid."""


class InvariantBroken(CarbonchainError):
    """Our own invariant broke: a bug, never the fault of input from outside."""


class ResourceFailure(CarbonchainError):
    """The machine failed us (a full disk, an I/O error): neither our bug nor anyone's bad input."""
