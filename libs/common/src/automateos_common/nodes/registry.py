"""Finding node types: the built-in folder (importlib) and the `automateos.nodes` entry points.

A duplicate type name fails fast, naming both origins. A third-party plugin that fails to
load is logged and skipped: one broken package must not take the platform down.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType

from .base import Node

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "automateos.nodes"
BUILTIN_PACKAGE = "automateos_common.nodes.builtin"


class DuplicateNodeType(RuntimeError):
    pass


class NodeRegistry:
    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}
        self._origins: dict[str, str] = {}
        self.load_errors: dict[str, str] = {}

    def register(self, cls: type[Node], origin: str) -> None:
        name = cls.type
        if name in self._types:
            raise DuplicateNodeType(f"node type '{name}' is defined twice: in {self._origins[name]} and in {origin}")
        self._types[name] = cls
        self._origins[name] = origin

    def register_module(self, module: ModuleType, origin: str | None = None) -> int:
        count = 0
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Node) and obj.__module__ == module.__name__ and not inspect.isabstract(obj):
                self.register(obj, origin or module.__name__)
                count += 1
        return count

    def get(self, type_name: str) -> type[Node] | None:
        return self._types.get(type_name)

    def types(self) -> list[str]:
        return sorted(self._types)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._types


def load_builtins(registry: NodeRegistry) -> None:
    package = importlib.import_module(BUILTIN_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}")
        registry.register_module(module, origin=module.__file__)


def load_entry_points(registry: NodeRegistry, group: str = ENTRY_POINT_GROUP) -> None:
    for ep in entry_points(group=group):
        origin = f"entry point '{ep.name}' ({ep.value})"
        try:
            target = ep.load()
        except Exception as exc:  # a broken plugin is logged, not fatal
            registry.load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            log.error("node plugin %s failed to load: %s", origin, exc)
            continue
        if inspect.isclass(target) and issubclass(target, Node):
            registry.register(target, origin)
        elif inspect.ismodule(target):
            registry.register_module(target, origin)
        else:
            registry.load_errors[ep.name] = "not a Node subclass or a module"
            log.error("node plugin %s is not a Node subclass or a module", origin)


def build_registry(*, entry_points_group: str | None = ENTRY_POINT_GROUP) -> NodeRegistry:
    registry = NodeRegistry()
    load_builtins(registry)
    if entry_points_group:
        load_entry_points(registry, entry_points_group)
    return registry


@lru_cache(maxsize=1)
def default_registry() -> NodeRegistry:
    return build_registry()
