"""The node plugin interface.

A node type is one class in one file: its `type` name, its `Config` (a pydantic model that is
the schema the workflows service validates definitions with), and `run()`, which the engine
calls with the config resolved and validated. The execution loop never names a node type.
"""

from __future__ import annotations

import builtins
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, ValidatorFunctionWrapHandler, WrapValidator

from .templates import has_template

T = TypeVar("T")


def _allow_template(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    if isinstance(value, str) and has_template(value) and not (info.context and info.context.get("resolved")):
        return value
    return handler(value)


# A config field that takes a T, or at save time a `{{...}}` reference that becomes a T at run time
# (then it is validated as a T, with the field's own constraints).
Templated = Annotated[T, WrapValidator(_allow_template)]


def _as_text(value: Any) -> Any:
    # A reference keeps its JSON type; where a field wants text (a header value), render scalars.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


# A string field that also takes numbers and booleans (rendered as text).
Text = Annotated[str, BeforeValidator(_as_text)]


class NodeConfig(BaseModel):
    """Base for node configs: unknown keys are errors, so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class NodeResult:
    """What a node returns: its output, and whether the run should stop here (successfully)."""

    output: Any
    stop: bool = False
    note: str | None = None


@dataclass
class NodeContext:
    execution_id: str
    workflow_id: int
    node_id: str
    trigger: Mapping[str, Any]
    scope: Mapping[str, Any]
    outputs: Mapping[str, Any]
    attempt: int = 1
    http_client: Callable[[], httpx.Client] | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("automateos.node"))

    def http(self) -> httpx.Client:
        """An HTTP client whose connections pass the egress guard."""
        if self.http_client is None:
            raise RuntimeError("this context has no HTTP client")
        return self.http_client()


class Node(ABC):
    type: ClassVar[str]
    kind: ClassVar[Literal["trigger", "action"]] = "action"
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[builtins.type[BaseModel]] = NodeConfig  # builtins: `type` is a field name here
    # Config fields the engine passes through unresolved, because the node evaluates them
    # itself (a condition binds references as variables instead of pasting text into code).
    raw_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def webhook_method(cls, config: dict[str, Any]) -> str | None:
        """For a trigger: the HTTP method its webhook URL answers to; None if it has no webhook URL."""
        return None

    def check(self, config: BaseModel) -> list[tuple[str, str]]:
        """Save-time checks beyond the schema: (field inside config, issue) pairs."""
        return []

    @abstractmethod
    def run(self, ctx: NodeContext, config: Any, input: Any) -> NodeResult | Any:
        """Do the work; return the output (or a NodeResult). Raise NodeExecutionError on failure."""
