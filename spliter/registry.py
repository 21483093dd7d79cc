"""One small registry mechanism for every pluggable component (backends, data sources, heads, metrics).

A registry maps a name to an entry (usually a small frozen dataclass describing the component). It is an
ordinary object owned by the module that defines the component family, never a hidden global of the caller:
code outside a component's own module asks the registry (``BACKENDS.get(name)``, ``BACKENDS.names()``)
instead of comparing names to strings.

Usage::

    HEADS: Registry[HeadSpec] = Registry("head")
    HEADS.register("increment", HeadSpec(...))

    @METRICS.decorate("embed_cosine")
    def embed_cosine(samples, ctx): ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownComponent(KeyError):
    """A name that a registry does not hold; the message lists the names it does hold."""

    def __str__(self) -> str:  # KeyError quotes its argument; this message is a sentence
        return str(self.args[0])


class Registry(Generic[T]):
    """Name -> entry for one kind of component, in registration order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add `entry` under `name`; registering a taken name is an error unless `replace`."""
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass replace=True to override it")
        self._entries[name] = entry
        return entry

    def decorate(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator form of :meth:`register` for entries that are functions or classes."""

        def wrap(entry: T) -> T:
            return self.register(name, entry, replace=replace)

        return wrap

    def unregister(self, name: str) -> None:
        """Remove `name` (tests that register throw-away components clean up with this)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownComponent(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries) or '(none)'}")
        return self._entries[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))


def import_object(path: str) -> object:
    """``"package.module:attr"`` -> the object; lets a registry name a heavy class without importing it."""
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"import path {path!r} must look like 'package.module:attr'")
    return getattr(importlib.import_module(module), attr)
