"""Repository-wide pytest hooks."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The notebooks run the real local model: mark them like the other model tests."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.model)
