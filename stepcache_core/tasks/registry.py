"""An ordered set of tasks; the first whose `detect` accepts a prompt owns it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from stepcache_core.errors import ConfigError
from stepcache_core.tasks.base import Task


class TaskRegistry:
    """Tasks in priority order. Register your own with `register`; no global instance exists."""

    def __init__(self, tasks: Iterable[Task[Any]] = ()) -> None:
        self._tasks: list[Task[Any]] = []
        for task in tasks:
            self.register(task)

    @classmethod
    def with_builtins(cls) -> TaskRegistry:
        """A registry holding the built-in tasks: linear equations, JSON objects, then objects
        matching a JSON Schema. The schema task comes last so that it never takes a prompt the
        others own: it gets the schema requests they decline (the `schema_request` prompts
        adapters send for a schema passed explicitly among them)."""
        from stepcache_core.tasks.json import JsonObjectTask
        from stepcache_core.tasks.linear import LinearEquationTask
        from stepcache_core.tasks.schema import JsonSchemaTask

        return cls([LinearEquationTask(), JsonObjectTask(), JsonSchemaTask()])

    def register(self, task: Task[Any], *, first: bool = False) -> None:
        """Add `task` (at the front with `first=True`); names must be unique."""
        if not isinstance(task, Task):
            raise ConfigError(f"{task!r} is not a stepcache_core.Task")
        if task.name in self.names():
            raise ConfigError(f"a task named {task.name!r} is already registered")
        if first:
            self._tasks.insert(0, task)
        else:
            self._tasks.append(task)

    def names(self) -> list[str]:
        return [t.name for t in self._tasks]

    @property
    def identity(self) -> str:
        """The tasks' names and versions in priority order: stored with every entry, so that an
        exact hit is served only to a cache that reads the prompt the same way."""
        return ",".join(f"{t.name}@{t.version}" for t in self._tasks)

    def get(self, name: str) -> Task[Any] | None:
        return next((t for t in self._tasks if t.name == name), None)

    def detect(self, prompt: str) -> tuple[Task[Any], Any] | None:
        """The first task that recognises `prompt`, with its spec."""
        for task in self._tasks:
            spec = task.detect(prompt)
            if spec is not None:
                return task, spec
        return None

    def __iter__(self) -> Iterator[Task[Any]]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)
