"""Makes the simulation helpers (pbft_sim, pbft_random) importable from the consensus tests."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
