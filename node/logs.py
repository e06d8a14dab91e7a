"""Logging setup: one line per event, as text or JSON (`--log-format json`).

Consensus lines carry height and view as structured fields: pass them with `extra={"height": h, "view": v}`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STRUCTURED_FIELDS = ("node", "height", "view", "peer", "tx_id", "seq")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in _STRUCTURED_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(fields)s")

    def format(self, record: logging.LogRecord) -> str:
        fields = [f"{name}={getattr(record, name)}" for name in _STRUCTURED_FIELDS if hasattr(record, name)]
        record.fields = (" " + " ".join(fields)) if fields else ""
        return super().format(record)


def configure_logging(*, fmt: str = "text", level: str = "info", node_name: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    if node_name is not None:
        handler.addFilter(_NodeNameFilter(node_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class _NodeNameFilter(logging.Filter):
    def __init__(self, node_name: str) -> None:
        super().__init__()
        self.node_name = node_name

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "node"):
            record.node = self.node_name
        return True
