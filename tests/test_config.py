"""CacheConfig validates its values on construction."""

from __future__ import annotations

import dataclasses

import pytest

from stepcache_core import CacheConfig, ConfigError


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_similarity": 1.5},
        {"min_skip_similarity": -2.0},
        {"semantic_min_similarity": 0.0},
        {"semantic_min_similarity": 1.01},
        {"candidates": 0},
        {"max_repairs": -1},
        {"max_tokens": 0},
        {"patch_max_tokens": -5},
        {"max_prompt_chars": 0},
        {"max_answer_chars": 0},
        {"max_answer_chars": 2.5},
        {"max_answer_chars": None},
    ],
)
def test_out_of_range_values_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        CacheConfig(**kwargs)  # type: ignore[arg-type]


def test_defaults_are_valid_and_frozen() -> None:
    cfg = CacheConfig()
    assert cfg.semantic_min_similarity is None and cfg.fallback and cfg.max_repairs == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.max_repairs = 5  # type: ignore[misc]
