"""Optional TLS for the peer port, for deployments across machines.

TLS protects the link's confidentiality and integrity on the wire; identity still comes from the node-key
handshake (p2p.handshake), which runs inside the TLS stream either way. With a CA file both sides verify the
other's certificate against it (mutual TLS); `check_hostname` additionally matches the dialled host against
the server certificate's subject alternative names.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError


@dataclass(frozen=True)
class TlsConfig:
    """Certificate files of one node."""

    cert_file: Path  # PEM certificate chain this node presents (as server and as client)
    key_file: Path  # PEM private key of that certificate
    ca_file: Path | None = None  # PEM CA bundle that peers' certificates must chain to; None = system CAs
    check_hostname: bool = True  # client side: the server certificate must name the dialled host

    def create_server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load(context)
        if self.ca_file is not None:
            context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: every peer presents a certificate
        return context

    def create_client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = self.check_hostname
        self._load(context)
        return context

    def _load(self, context: ssl.SSLContext) -> None:
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
            if self.ca_file is not None:
                context.load_verify_locations(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load TLS files ({self.cert_file}, {self.key_file}, {self.ca_file}): {exc}"
            ) from None
