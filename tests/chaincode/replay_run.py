"""Run a fixed mixed transaction sequence from genesis and print the SHA-256 of all sorted state entries.

Used by test_determinism in fresh interpreters with different PYTHONHASHSEED values.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from chainkit import Chain
from scenario import run_compliance_year


def compute_state_digest(chain: Chain) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(chain.state.items().items()):
        digest.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
    return digest.hexdigest()


if __name__ == "__main__":
    chain = Chain(sign=False)
    run_compliance_year(chain)
    print(compute_state_digest(chain))
