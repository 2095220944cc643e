"""`merge`: join the outputs of the branches that lead into it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from ...errors import NodeExecutionError
from ..base import Node, NodeConfig, NodeContext


class MergeConfig(NodeConfig):
    mode: Literal["object", "array", "append", "deep"] = Field(
        default="object",
        description="object: {source node id: output}; array: the outputs in connection order; append: lists "
                    "concatenated (any other output added as one element); deep: objects merged recursively, "
                    "later connections winning.",
    )


def deep_merge(base: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """`other` merged into a copy of `base`: objects recursively, anything else (lists too) replaced."""
    out = dict(base)
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


class MergeNode(Node):
    type = "merge"
    inline = True
    title = "Merge"
    description = ("Waits for every inbound branch to finish or be skipped, then joins the outputs of those "
                   "that ran (a branch not taken contributes nothing): as an object by source node id, an "
                   "array, appended lists, or a deep merge of objects.")
    Config = MergeConfig

    def run(self, ctx: NodeContext, config: MergeConfig, input: Any) -> Any:
        if config.mode == "object":
            return dict(ctx.inputs)
        if config.mode == "array":
            return list(ctx.inputs.values())
        if config.mode == "append":
            items: list[Any] = []
            for output in ctx.inputs.values():
                if isinstance(output, list):
                    items.extend(output)
                else:
                    items.append(output)
            return items
        merged: dict[str, Any] = {}
        for source, output in ctx.inputs.items():
            if not isinstance(output, Mapping):
                raise NodeExecutionError(f"deep merge joins objects, but the output of '{source}' is "
                                         f"{_json_type(output)}")
            merged = deep_merge(merged, output)
        return merged


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"
