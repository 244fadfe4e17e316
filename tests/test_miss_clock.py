"""`MissClock`: the seconds from a lookup's miss to the store of the model's answer."""

from __future__ import annotations

import time

from stepcache_core.miss_clock import MissClock


def test_seconds_since_the_miss_then_forgotten() -> None:
    clock = MissClock()
    clock.start(("prompt", "model"))
    time.sleep(0.02)
    assert clock.seconds(("prompt", "model")) >= 0.02
    assert clock.seconds(("prompt", "model")) == 0.0  # read once: a later store saved nothing


def test_an_unknown_key_took_no_seconds() -> None:
    clock = MissClock()
    clock.start("a")
    assert clock.seconds("b") == 0.0
    assert clock.seconds("a") > 0.0


def test_the_oldest_miss_goes_first_beyond_the_size() -> None:
    clock = MissClock(size=2)
    for key in ("first", "second", "third"):
        clock.start(key)
    assert clock.seconds("first") == 0.0
    assert clock.seconds("second") > 0.0
    assert clock.seconds("third") > 0.0
