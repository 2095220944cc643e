"""The node SDK: what a node plugin imports to declare its config and run."""

from .base import Node, NodeConfig, NodeContext, NodeResult, Templated, Text
from .registry import NodeRegistry, build_registry, default_registry

__all__ = [
    "Node", "NodeConfig", "NodeContext", "NodeRegistry", "NodeResult", "Templated", "Text",
    "build_registry", "default_registry",
]
