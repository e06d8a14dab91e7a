"""A node's peer frame limit fits the largest consensus message its chain allows, whatever the config says."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consensus.messages import compute_message_bytes_max
from core.genesis import load_genesis
from node.runtime import compute_frame_bytes_max
from p2p.framing import FRAME_OVERHEAD_BYTES_MAX

GENESIS_PARAMS = load_genesis("genesis.json").consensus


@given(
    configured=st.integers(64 * 1024, 256 * 1024 * 1024),
    block_bytes_max=st.integers(64 * 1024, 64 * 1024 * 1024),
    pipeline_depth=st.integers(1, 16),
)
def test_frame_limit_fits_a_new_view_with_full_blocks(
    configured: int, block_bytes_max: int, pipeline_depth: int
) -> None:
    params = GENESIS_PARAMS.model_copy(
        update={"block_bytes_max": block_bytes_max, "pipeline_depth": pipeline_depth}
    )
    limit = compute_frame_bytes_max(configured, params)
    assert limit >= configured
    assert limit - FRAME_OVERHEAD_BYTES_MAX >= compute_message_bytes_max(params)
    assert limit >= 2 * block_bytes_max  # a sync answer carries at least one full block and its results


def test_default_config_is_raised_for_the_shipped_genesis() -> None:
    # genesis.json: 8 MiB blocks, pipeline depth 2; a NEW-VIEW may exceed the default 16 MiB frame
    needed = compute_message_bytes_max(GENESIS_PARAMS) + FRAME_OVERHEAD_BYTES_MAX
    assert needed > 16 * 1024 * 1024
    assert compute_frame_bytes_max(16 * 1024 * 1024, GENESIS_PARAMS) == needed
