"""The web dashboard every node serves at `/` beside its API: read-only pages for regulators and members,
live through the event stream, with blocks and retirement receipts verified in the browser.

Pages read through the same API backend as `/v1` (node.api.ApiBackend), so they show what the API answers;
docs/DASHBOARD.md describes the pages, the in-browser verification and the choices behind them.
"""

from node.web.app import add_dashboard

__all__ = ["add_dashboard"]
