"""`loop`: run the nodes after its `each` output once per item, then continue on `done`."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, WithJsonSchema

from ...errors import NodeExecutionError
from ...settings import CommonSettings
from ..base import Node, NodeConfig, NodeContext, NodeResult
from ..templates import has_template

BODY_OUTPUT = "each"
AFTER_OUTPUT = "done"


@lru_cache(maxsize=1)
def loop_max_items() -> int:
    """AUTOMATEOS_LOOP_MAX_ITEMS, read once (tests: set the variable, then `loop_max_items.cache_clear()`)."""
    return CommonSettings().loop_max_items


def _list_or_reference(value: Any, info: ValidationInfo) -> Any:
    # Once resolved, anything passes: run() names the type it got, which a schema error cannot do as well.
    if isinstance(value, list) or (info.context and info.context.get("resolved")):
        return value
    if isinstance(value, str) and has_template(value):
        return value
    raise ValueError("must be a list, or a {{...}} reference to one")


class LoopConfig(NodeConfig):
    items: Annotated[Any, AfterValidator(_list_or_reference), WithJsonSchema({"type": "array", "items": {}})] = Field(
        description="The list to iterate over, usually a reference such as {{trigger.payload.orders}}; inside "
                    "the body, {{loop.item}} is the item and {{loop.index}} its position (from 0).",
    )
    concurrency: int = Field(default=1, ge=1, le=32, description="Items whose body runs at the same time.")


def _plural(n: int) -> str:
    return f"{n} item" if n == 1 else f"{n} items"


class LoopNode(Node):
    type = "loop"
    inline = True
    title = "Loop"
    description = ("Runs the nodes connected to its 'each' output once per item of a list, then continues on "
                   "'done' with {\"count\", \"results\"} (one result per item, in item order).")
    Config = LoopConfig
    body_output = BODY_OUTPUT

    @classmethod
    def output_names(cls, config: dict[str, Any]) -> tuple[str, ...]:
        return (BODY_OUTPUT, AFTER_OUTPUT)

    def run(self, ctx: NodeContext, config: LoopConfig, input: Any) -> NodeResult:
        items = config.items
        if not isinstance(items, list):
            raise NodeExecutionError(f"items must be a list, got {type(items).__name__}: {items!r:.100}")
        limit = loop_max_items()
        if len(items) > limit:
            raise NodeExecutionError(f"loop over {len(items)} items; the limit is {limit} (AUTOMATEOS_LOOP_MAX_ITEMS)")
        return NodeResult(output=None, iterate=items, concurrency=config.concurrency,
                          note=f"{_plural(len(items))}, {config.concurrency} at a time")

    def collect(self, config: LoopConfig, items: list[Any], results: list[Any]) -> NodeResult:
        return NodeResult(output={"count": len(items), "results": results}, branch=AFTER_OUTPUT,
                          note=_plural(len(items)))
