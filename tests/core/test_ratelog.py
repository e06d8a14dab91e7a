"""The rate-limited log: one line per cause per interval, then a count of what was left out."""

from __future__ import annotations

import logging

import pytest

from core.ratelog import OneLineErrors, RateLimitedLog, summarise_exception


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_cause_per_interval_then_the_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    limited = RateLimitedLog(logging.getLogger("test.ratelog"), interval_s=60, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.ratelog"):
        assert limited.warning("garbage", "garbage from %s", "10.0.0.1")
        assert not limited.warning("garbage", "garbage from %s", "10.0.0.2")
        assert limited.warning("timeout", "handshake timed out")  # another cause is not held back
        clock.now += 59.9
        assert not limited.warning("garbage", "garbage from %s", "10.0.0.3")
        clock.now += 0.1
        assert limited.warning("garbage", "garbage from %s", "10.0.0.4")
        clock.now += 60
        assert limited.warning("garbage", "garbage from %s", "10.0.0.5")
    assert [r.getMessage() for r in caplog.records] == [
        "garbage from 10.0.0.1",
        "handshake timed out",
        "garbage from 10.0.0.4 (and 2 more like it in 60 s)",
        "garbage from 10.0.0.5",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_library_tracebacks_of_client_faults_become_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    library = logging.getLogger("test.ratelog.library")
    library.addFilter(OneLineErrors(logging.getLogger("test.ratelog.ours"), (ConnectionError,)))
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            try:
                raise ConnectionResetError("Connection lost\n  while reading")
            except ConnectionError:
                library.exception("Error handling request from %s", "10.0.0.9")
        try:
            raise KeyError("our own bug")
        except KeyError:
            library.exception("Unhandled exception")
    lines = [(r.name, r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert lines == [
        (
            "test.ratelog.ours",
            "WARNING",
            "Error handling request from 10.0.0.9: ConnectionResetError: Connection lost while reading",
            False,
        ),
        ("test.ratelog.library", "ERROR", "Unhandled exception", True),  # not a client fault: kept whole
    ]


def test_exception_summaries_are_one_bounded_line() -> None:
    assert summarise_exception(ValueError("a\n\n  b ")) == "ValueError: a b"
    assert summarise_exception(TimeoutError()) == "TimeoutError"
    assert len(summarise_exception(ValueError("x" * 1000))) < 200
