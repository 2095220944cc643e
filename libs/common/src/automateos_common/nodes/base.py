"""The node plugin interface.

A node type is one class in one file: its `type` name, its `Config` (a pydantic model that is
the schema the workflows service validates definitions with), and `run()`, which the engine
calls with the config resolved and validated. The execution loop never names a node type.
"""

from __future__ import annotations

import builtins
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, ValidatorFunctionWrapHandler, WrapValidator

from ..credentials import OpenedCredential
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
    """What a node returns.

    output      the step's output (what `{{node-id...}}` and the next node's input see)
    stop        the path stops here, successfully: the nodes after it are skipped (filter)
    note        a short human line for the history ("condition false; run stopped here")
    branch      the named output taken (`true`, a switch case); connections from the other
                outputs are not followed and the nodes only they lead to are skipped
    wait_until  finish the step at this time (UTC), with `output`: a delay. A short wait is
                slept by the engine; a long one parks the run (status `waiting`, no worker held)
    iterate     a loop: run the body (what the `body_output` connections lead to) once per item,
                at most `concurrency` at a time; then the engine calls `collect()` on the node
    """

    output: Any
    stop: bool = False
    note: str | None = None
    branch: str | None = None
    wait_until: datetime | None = None
    iterate: list[Any] | None = None
    concurrency: int = 1


IDEMPOTENCY_NAMESPACE = uuid.UUID("5b0c8a36-8f7e-4c55-9a3f-4c1f6f0f2a11")


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
    # The outputs of the inbound connections that were taken, by source node id, in connection order.
    inputs: Mapping[str, Any] = field(default_factory=dict)
    iteration: int | None = None  # inside a loop's body: the item's index
    deadline: float | None = None  # time.monotonic() by which the attempt must end (node timeout)
    retry_on: frozenset[str] = frozenset()  # the error kinds this step's retry policy retries
    # The run owner's credentials by id or name, opened in the engine (NodeExecutionError when missing).
    credentials: Callable[[int | str], OpenedCredential] | None = None

    @property
    def step_key(self) -> str:
        return self.node_id if self.iteration is None else f"{self.node_id}[{self.iteration}]"

    @property
    def idempotency_key(self) -> str:
        """Stable for this step of this run: the same on every attempt and after a crash recovery."""
        return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{self.execution_id}/{self.step_key}"))

    def remaining(self, default: float) -> float:
        """Seconds left before the deadline (at most `default`; at least a millisecond)."""
        if self.deadline is None:
            return default
        return max(0.001, min(default, self.deadline - time.monotonic()))

    def credential(self, ref: int | str) -> OpenedCredential:
        """The run owner's credential, its current value in clear: keep it out of outputs and errors."""
        if self.credentials is None:
            raise RuntimeError("this context has no credentials")
        return self.credentials(ref)

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
    # A loop: connections from this output form the body the engine runs once per item.
    body_output: ClassVar[str | None] = None
    # Quick and without I/O (a condition, a transform): the engine runs it on its own thread, with no
    # thread of its own and no timeout, and writes its step once, when it is done.
    inline: ClassVar[bool] = False

    @classmethod
    def output_names(cls, config: dict[str, Any]) -> tuple[str, ...] | None:
        """The named outputs connections may leave from (`{"from", "output", "to"}`); None: one
        unnamed output. `config` is the raw (unresolved) config as saved."""
        return None

    def collect(self, config: Any, items: list[Any], results: list[Any]) -> NodeResult:
        """A loop's step output once every item's body has run (`results[i]` is item i's)."""
        raise NotImplementedError

    @classmethod
    def webhook_method(cls, config: dict[str, Any]) -> str | None:
        """For a trigger: the HTTP method its webhook URL answers to; None if it has no webhook URL."""
        return None

    @classmethod
    def webhook_options(cls, config: dict[str, Any]) -> dict[str, Any]:
        """For a trigger with a webhook URL: what the ingress needs of its config to answer a request
        (JSON-able; published in the catalog's hook entry, so never a secret value: credentials by id)."""
        return {}

    @classmethod
    def node_references(cls, config: dict[str, Any]) -> list[tuple[str, str]]:
        """Config fields that name another node of the definition: (field inside config, node id) pairs,
        checked at save time (the node must exist and not be inside a loop's body). `config` is valid."""
        return []

    def check(self, config: BaseModel) -> list[tuple[str, str]]:
        """Save-time checks beyond the schema: (field inside config, issue) pairs."""
        return []

    @abstractmethod
    def run(self, ctx: NodeContext, config: Any, input: Any) -> NodeResult | Any:
        """Do the work; return the output (or a NodeResult). Raise NodeExecutionError on failure."""
