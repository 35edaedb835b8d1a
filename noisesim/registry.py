"""Name -> implementation registries: noise models, observers, data sets, models, allocation methods.

A registry maps the names users type (``--noise_type thermal``, ``act_observer="mse"``) to the
class or function behind them, so that adding an implementation is one new file plus its
``@REGISTRY.register("name")`` line: the configs validate against the registry, the command
line offers its names as choices, and nothing else needs to change.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional


class Registry:
    """An ordered name -> object mapping with a decorator to fill it."""

    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, Any] = {}

    def register(self, name: str, obj: Optional[Any] = None) -> Callable:
        """``@registry.register("name")`` on a class or function, or ``registry.register("name", obj)``."""
        def add(o: Any) -> Any:
            if name in self._items and self._items[name] is not o:
                raise ValueError(f"{self.what} {name!r} is already registered")
            self._items[name] = o
            return o

        return add(obj) if obj is not None else add

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> Any:
        if name not in self._items:
            raise KeyError(f"unknown {self.what} {name!r}; choose from {', '.join(self._items)}")
        return self._items[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def items(self):
        return self._items.items()


NOISE_MODELS = Registry("noise model")
OBSERVERS = Registry("observer")
DATASETS = Registry("data set")
MODELS = Registry("model")
ALLOCATORS = Registry("allocation method")
