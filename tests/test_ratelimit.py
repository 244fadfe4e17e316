"""RateLimitedLog: one warning per kind and interval, on a fake clock."""

from __future__ import annotations

import logging

import pytest

from stepcache_core.ratelimit import RateLimitedLog


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_one_warning_per_kind_and_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    warnings = RateLimitedLog(logging.getLogger("stepcache.test"), interval=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="stepcache.test"):
        logged = [warnings.warning("store", "store down: %s", i) for i in range(100)]
        assert logged == [True] + [False] * 99
        assert warnings.warning("embed", "embedder down")  # another kind is not held back
        clock.now += 59.9
        assert not warnings.warning("store", "store down: %s", "late")
        clock.now += 0.1  # 60 s after the first one
        assert warnings.warning("store", "store down: %s", "again")
    assert _messages(caplog) == [
        "store down: 0",
        "embedder down",
        "store down: again (100 more like it in the last 60 s not logged)",
    ]


def test_reset_lets_the_next_failure_log_at_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    warnings = RateLimitedLog(logging.getLogger("stepcache.test"), interval=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="stepcache.test"):
        assert warnings.warning("store", "outage 1")
        assert not warnings.warning("store", "outage 1 again")
        warnings.reset("store")  # the store answered again
        clock.now += 1.0
        assert warnings.warning("store", "outage 2")
    assert _messages(caplog) == ["outage 1", "outage 2"]
