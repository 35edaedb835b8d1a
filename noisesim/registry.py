"""Name -> implementation registries: noise models, observers, data sets, models, allocation methods.

A registry maps the names users type (``--noise_type thermal``, ``act_observer="mse"``) to the
class or function behind them, so that adding an implementation is one new file plus its
``@REGISTRY.register("name")`` line: the configs validate against the registry, the command
line offers its names as choices, and nothing else needs to change.

Implementations from outside the package come in two ways (docs/plugins.md):

* an import path, ``package.module:attribute``, wherever a name is accepted (``--model
  mypkg.nets:tiny_cnn``), as torchrun and Hydra accept them; it is imported on first use;
* an entry point of an installed package, in the registry's group (``noisesim.models``,
  ``noisesim.datasets``, ``noisesim.noise_models``, ``noisesim.allocators``), named by the entry
  point's name; a registry reads its group the first time it is asked for a name.

What a plugin hands over is checked by the registry's ``adapt(obj, origin)`` (set by the module
that defines what the registry holds: a model factory must be callable, a noise model a
``NoiseModel`` subclass, ...; ``origin`` names the plugin in later errors). A broken import path fails with one :class:`PluginError` line; a broken entry
point is left out with a warning and never disables the rest.
"""
from __future__ import annotations

import importlib
import warnings
from importlib import metadata
from typing import Any, Callable, Iterator, Optional


class PluginError(ValueError):
    """An import path or entry point that does not give a usable implementation (one line)."""


def one_line(e: BaseException) -> str:
    """An exception as one line: its type and its message's words."""
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def import_object(path: str) -> Any:
    """The object at ``package.module:attribute`` (attribute may be dotted); PluginError if there is none."""
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise PluginError(f"{path!r} is not an import path (package.module:attribute)")
    try:
        obj = importlib.import_module(module)
    except Exception as e:  # any error raised while the module imports
        raise PluginError(f"cannot import {module} ({one_line(e)})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise PluginError(f"{module} has no attribute {attr}")
        obj = getattr(obj, part)
    return obj


class Registry:
    """An ordered name -> object mapping with a decorator to fill it; ``group``: the entry-point group
    it also reads; ``adapt(obj, origin)``: checks (and may wrap) what a plugin hands over."""

    def __init__(self, what: str, group: Optional[str] = None):
        self.what, self.group = what, group
        self.adapt: Callable[[Any, str], Any] = lambda obj, origin: obj
        self._items: dict[str, Any] = {}
        self._imported: dict[str, Any] = {}  # import paths used so far (not listed among the names)
        self._entry_points_read = group is None

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

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        for ep in metadata.entry_points(group=self.group):
            dist = f" of {ep.dist.name} {ep.dist.version}" if ep.dist is not None else ""
            where = f"entry point {ep.name} = {ep.value} (group {self.group}{dist})"
            if ep.name in self._items:
                warnings.warn(f"noisesim: {where} left out: {self.what} {ep.name!r} is already registered",
                              stacklevel=3)
                continue
            try:
                self._items[ep.name] = self.adapt(ep.load(), f"{ep.name} (entry point{dist})")
            except Exception as e:  # a broken plugin disables only itself
                warnings.warn(f"noisesim: {where} left out: {one_line(e)}", stacklevel=3)

    def get(self, name: str) -> Any:
        """The object registered as ``name``, or imported from the import path ``name`` (once).

        Raises KeyError for an unknown name and PluginError for an import path that gives nothing usable."""
        self._read_entry_points()
        if name in self._items:
            return self._items[name]
        if ":" not in name:
            raise KeyError(f"unknown {self.what} {name!r}; choose from {', '.join(self._items)}")
        if name not in self._imported:
            self._imported[name] = self.adapt(import_object(name), name)
        return self._imported[name]

    def problem(self, name: str, extra: tuple[str, ...] = ()) -> Optional[str]:
        """Why ``name`` names no usable implementation (None when it does); ``extra``: other names accepted
        (such as ``none``), listed among the choices."""
        if name in extra:
            return None
        try:
            self.get(name)
        except KeyError:
            return (f"unknown; choose from {', '.join(self.names() + tuple(extra))}, or give an import path "
                    "package.module:name")
        except PluginError as e:
            return str(e)
        return None

    def names(self) -> tuple[str, ...]:
        self._read_entry_points()
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.problem(name) is None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self):
        self._read_entry_points()
        return self._items.items()


NOISE_MODELS = Registry("noise model", "noisesim.noise_models")
OBSERVERS = Registry("observer")
DATASETS = Registry("data set", "noisesim.datasets")
MODELS = Registry("model", "noisesim.models")
ALLOCATORS = Registry("allocation method", "noisesim.allocators")
