"""Workflow definitions: validation at save time and the execution plan the engine follows.

Every error names the field it is about (`definition.nodes[1].config.url`), and all errors are
collected, not just the first. The same function builds the engine's plan, so what was
accepted at save time is exactly what runs.
"""

from __future__ import annotations

import builtins
import heapq
import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from ..errors import ValidationError, field_path
from .base import Node
from .registry import NodeRegistry
from .templates import INPUT, LOOP, RESERVED_HEADS, TRIGGER, TemplateError, refs_in, walk_strings

# fullmatch, not match: `$` also matches before a trailing "\n", which let "a\n" through.
NODE_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
MAX_NODES = 200
DEFINITION_KEYS = frozenset({"nodes", "connections", "settings"})
NODE_KEYS = frozenset({"id", "type", "config", "name", "notes", "retry", "timeout_s"})
CONNECTION_KEYS = frozenset({"from", "to", "output"})
ERROR_KIND = Literal["timeout", "connection_error", "5xx", "429", "error"]
TRANSIENT_ERRORS: tuple[ERROR_KIND, ...] = ("timeout", "connection_error", "5xx", "429")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetryPolicy(_Strict):
    """A node's `retry`: how often and how long to try again, and on which errors."""

    max_attempts: int = Field(default=3, ge=1, le=25, description="Attempts in all, the first included.")
    backoff: Literal["exponential", "fixed"] = "exponential"
    initial_s: float = Field(default=1.0, gt=0, le=86_400, description="Wait before the second attempt.")
    max_s: float = Field(default=300.0, gt=0, le=7 * 86_400, description="Longest wait between attempts.")
    on: list[ERROR_KIND] = Field(
        default_factory=lambda: list(TRANSIENT_ERRORS),
        description="Errors worth another attempt; `error` is any failure.",
    )

    @model_validator(mode="after")
    def _initial_within_max(self) -> RetryPolicy:
        if self.initial_s > self.max_s:
            raise ValueError(f"initial_s ({self.initial_s:g}) is longer than max_s ({self.max_s:g})")
        return self


class RunSettings(_Strict):
    """A definition's `settings`."""

    timeout_s: float | None = Field(
        default=None, gt=0, le=366 * 86_400,
        description="The run fails when it has not finished this long after it started (waits included).",
    )
    max_parallel: int = Field(default=8, ge=1, le=64, description="Steps of one run that run at the same time.")


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    output: str | None = None  # the source's named output it leaves from; None: its only output


@dataclass
class PlannedNode:
    index: int
    id: str
    type: str
    cls: builtins.type[Node]  # builtins: `type` is a field name here
    config: dict[str, Any]
    predecessors: list[str] = field(default_factory=list)
    inbound: list[Edge] = field(default_factory=list)  # in connection order
    outbound: list[Edge] = field(default_factory=list)
    retry: RetryPolicy | None = None
    timeout_s: float | None = None
    loop: str | None = None  # the loop whose body this node is in
    body: list[str] = field(default_factory=list)  # for a loop: its body's nodes, in execution order


@dataclass
class Plan:
    nodes: list[PlannedNode]  # in execution (topological) order
    trigger_id: str
    settings: RunSettings = field(default_factory=RunSettings)

    def by_id(self) -> dict[str, PlannedNode]:
        return {n.id: n for n in self.nodes}


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field: str, issue: str) -> None:
        self.items.append({"field": field, "issue": issue})

    def raise_if_any(self) -> None:
        if self.items:
            first = self.items[0]
            raise ValidationError("Invalid workflow definition", field=first["field"], issue=first["issue"],
                                  errors=self.items)


def _config_field(base: str, loc: tuple[Any, ...] | str) -> str:
    # field_path, not loc_to_field: a config field named "query" or "body" is not a request source.
    inner = loc if isinstance(loc, str) else field_path(loc)
    if not inner:
        return base
    return f"{base}{inner}" if inner.startswith("[") else f"{base}.{inner}"


def validate_definition(definition: Any, registry: NodeRegistry, *, prefix: str = "definition") -> Plan:
    errors = _Errors()
    if not isinstance(definition, dict):
        errors.add(prefix, "must be an object with 'nodes' and optional 'connections'")
        errors.raise_if_any()
    for key in sorted(set(definition) - DEFINITION_KEYS):
        errors.add(f"{prefix}.{key}", "unknown key (expected 'nodes', 'connections' and 'settings')")
    raw_nodes = definition.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        errors.add(f"{prefix}.nodes", "must be a non-empty list of nodes")
        errors.raise_if_any()
    if len(raw_nodes) > MAX_NODES:
        errors.add(f"{prefix}.nodes", f"at most {MAX_NODES} nodes")
        errors.raise_if_any()

    nodes: list[PlannedNode] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_nodes):
        where = f"{prefix}.nodes[{i}]"
        if not isinstance(raw, dict):
            errors.add(where, "must be an object with 'id', 'type' and 'config'")
            continue
        for key in sorted(set(raw) - NODE_KEYS):
            errors.add(f"{where}.{key}", "unknown key")
        node_id, type_name, config = raw.get("id"), raw.get("type"), raw.get("config", {})
        ok = True
        if not isinstance(node_id, str) or not NODE_ID_RE.fullmatch(node_id):
            errors.add(f"{where}.id", "must be 1-64 characters of letters, digits, '_' and '-'")
            ok = False
        elif node_id in RESERVED_HEADS:
            errors.add(f"{where}.id", f"'{node_id}' is reserved (used in {{{{{node_id}...}}}} references)")
            ok = False
        elif node_id in seen:
            errors.add(f"{where}.id", f"duplicate id '{node_id}' (also nodes[{seen[node_id]}])")
            ok = False
        else:
            seen[node_id] = i
        cls = registry.get(type_name) if isinstance(type_name, str) else None
        if cls is None:
            errors.add(f"{where}.type", f"unknown node type {type_name!r}; known: {', '.join(registry.types())}")
            ok = False
        if config is None:
            config = {}
        if not isinstance(config, dict):
            errors.add(f"{where}.config", "must be an object")
            ok = False
        retry = _strict_model(RetryPolicy, raw.get("retry"), f"{where}.retry", errors)
        timeout_s = raw.get("timeout_s")
        if timeout_s is not None and (isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float)
                                      or not 0 < timeout_s <= 86_400):
            errors.add(f"{where}.timeout_s", "must be a number of seconds above 0, at most 86400")
            ok = False
        if ok and cls is not None:
            _check_config(cls, config, f"{where}.config", errors)
            assert isinstance(node_id, str) and isinstance(type_name, str)
            nodes.append(PlannedNode(index=i, id=node_id, type=type_name, cls=cls, config=config, retry=retry,
                                     timeout_s=float(timeout_s) if timeout_s is not None else None))
    settings = _strict_model(RunSettings, definition.get("settings"), f"{prefix}.settings", errors)
    errors.raise_if_any()

    triggers = [n for n in nodes if n.cls.kind == "trigger"]
    if len(triggers) != 1:
        found = ", ".join(n.id for n in triggers) or "none"
        errors.add(f"{prefix}.nodes", f"exactly one trigger node is required (found: {found})")
        errors.raise_if_any()
    trigger = triggers[0]

    raw_conns = definition.get("connections")
    if raw_conns is None or raw_conns == []:
        # No connections: list order, each node fed by the one before it.
        if nodes[0] is not trigger:
            errors.add(f"{prefix}.nodes[{trigger.index}]", "without connections the trigger must be the first node")
        for prev, node in itertools.pairwise(nodes):
            edge = Edge(prev.id, node.id)
            node.predecessors = [prev.id]
            node.inbound = [edge]
            prev.outbound = [edge]
        for node in nodes:
            if node.cls.output_names(node.config) is not None:
                errors.add(f"{prefix}.nodes[{node.index}]",
                           f"'{node.type}' nodes have named outputs: use connections that name them")
        ordered = nodes
    else:
        ordered = _plan_graph(raw_conns, nodes, trigger, errors, prefix)
    errors.raise_if_any()
    _plan_loops(ordered, errors, prefix)
    errors.raise_if_any()
    _check_node_references(ordered, errors, prefix)
    errors.raise_if_any()

    _check_references(ordered, errors, prefix)
    errors.raise_if_any()
    return Plan(nodes=ordered, trigger_id=trigger.id, settings=settings or RunSettings())


M = TypeVar("M", bound=BaseModel)


def _strict_model(model: builtins.type[M], raw: Any, where: str, errors: _Errors) -> M | None:
    if raw is None:
        return None
    try:
        return model.model_validate(raw)
    except PydanticValidationError as exc:
        for e in exc.errors():
            errors.add(_config_field(where, tuple(e["loc"])), e["msg"])
        return None


def _check_config(cls: type[Node], config: dict[str, Any], where: str, errors: _Errors) -> None:
    try:
        model = cls.Config.model_validate(config)
    except PydanticValidationError as exc:
        for e in exc.errors():
            errors.add(_config_field(where, tuple(e["loc"])), e["msg"])
        return
    for sub, issue in cls().check(model):
        errors.add(_config_field(where, sub), issue)


def _plan_graph(raw_conns: Any, nodes: list[PlannedNode], trigger: PlannedNode, errors: _Errors,
                prefix: str) -> list[PlannedNode]:
    where = f"{prefix}.connections"
    if not isinstance(raw_conns, list):
        errors.add(where, "must be a list of {\"from\", \"to\"}")
        return nodes
    by_id = {n.id: n for n in nodes}
    succ: dict[str, list[str]] = {n.id: [] for n in nodes}
    seen_edges: set[tuple[str, str, str | None]] = set()
    for i, conn in enumerate(raw_conns):
        cw = f"{where}[{i}]"
        if not isinstance(conn, dict):
            errors.add(cw, "must be an object {\"from\", \"to\"}")
            continue
        for key in sorted(set(conn) - CONNECTION_KEYS):
            errors.add(f"{cw}.{key}", "unknown key")
        src, dst, output = conn.get("from"), conn.get("to"), conn.get("output")
        bad = False
        for key, value in (("from", src), ("to", dst)):
            if not isinstance(value, str) or value not in by_id:
                errors.add(f"{cw}.{key}", f"no node with id {value!r}")
                bad = True
        if bad:
            continue
        assert isinstance(src, str) and isinstance(dst, str)
        names = by_id[src].cls.output_names(by_id[src].config)
        if names is None and output is not None:
            errors.add(f"{cw}.output", f"'{by_id[src].type}' nodes have a single output; leave 'output' out")
            continue
        if names is not None and output not in names:
            errors.add(f"{cw}.output", f"must name an output of '{src}': {', '.join(names)}")
            continue
        if src == dst:
            errors.add(cw, "a node cannot connect to itself")
        elif (src, dst, output) in seen_edges:
            where_from = f"{src}.{output}" if output else src
            errors.add(cw, f"duplicate connection {where_from} -> {dst}")
        elif by_id[dst] is trigger:
            errors.add(f"{cw}.to", "the trigger cannot have inbound connections")
        else:
            # Two outputs of one node may lead to the same node (two switch cases, one handler).
            seen_edges.add((src, dst, output))
            succ[src].append(dst)
            edge = Edge(src, dst, output)
            if src not in by_id[dst].predecessors:
                by_id[dst].predecessors.append(src)
            by_id[dst].inbound.append(edge)
            by_id[src].outbound.append(edge)
    if errors.items:
        return nodes

    # Kahn's algorithm; ties broken by list position so the order is stable and readable.
    indeg = {n.id: len(n.inbound) for n in nodes}
    heap = [(n.index, n.id) for n in nodes if indeg[n.id] == 0]
    heapq.heapify(heap)
    ordered: list[PlannedNode] = []
    while heap:
        _, nid = heapq.heappop(heap)
        ordered.append(by_id[nid])
        for nxt in succ[nid]:
            indeg[nxt] -= 1
            if indeg[nxt] == 0:
                heapq.heappush(heap, (by_id[nxt].index, nxt))
    if len(ordered) != len(nodes):
        cycle = _find_cycle({k: v for k, v in succ.items() if indeg[k] > 0})
        errors.add(where, f"connections form a cycle: {' -> '.join(cycle)}")
        return nodes
    reachable = _reachable(trigger.id, succ)
    for n in nodes:
        if n.id not in reachable:
            errors.add(f"{prefix}.nodes[{n.index}]", f"node '{n.id}' is not connected to the trigger '{trigger.id}'")
    return ordered


def _reachable(start: str, succ: dict[str, list[str]]) -> set[str]:
    seen, stack = {start}, [start]
    while stack:
        for nxt in succ[stack.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _find_cycle(succ: dict[str, list[str]]) -> list[str]:
    # Every node left has in-degree > 0 from others left, so walking forward must revisit one.
    start = next(iter(succ))
    path, index = [start], {start: 0}
    while True:
        nxt = next(n for n in succ[path[-1]] if n in succ)
        if nxt in index:
            return [*path[index[nxt]:], nxt]
        index[nxt] = len(path)
        path.append(nxt)


def ancestors(plan_nodes: list[PlannedNode]) -> dict[str, set[str]]:
    by_id = {n.id: n for n in plan_nodes}
    memo: dict[str, set[str]] = {}
    for n in plan_nodes:  # topological order: predecessors are done first
        acc: set[str] = set()
        for p in n.predecessors:
            acc.add(p)
            acc |= memo.get(p, set())
        memo[n.id] = acc
    assert set(memo) == set(by_id)
    return memo


def _check_node_references(ordered: list[PlannedNode], errors: _Errors, prefix: str) -> None:
    """Config fields naming another node (Node.node_references): it exists and runs once (not in a loop's body)."""
    by_id = {n.id: n for n in ordered}
    for node in ordered:
        for sub, ref in node.cls.node_references(node.config):
            where = _config_field(f"{prefix}.nodes[{node.index}].config", sub)
            target = by_id.get(ref)
            if target is None:
                errors.add(where, f"no node with id {ref!r}")
            elif target.loop is not None:
                errors.add(where, f"node '{ref}' is in the body of loop '{target.loop}': it runs once per item")


def _plan_loops(ordered: list[PlannedNode], errors: _Errors, prefix: str) -> None:
    """A loop's body: every node reachable from its `body_output`; it is entered only that way."""
    by_id = {n.id: n for n in ordered}
    for loop in ordered:
        out = loop.cls.body_output
        if out is None:
            continue
        body: set[str] = set()
        stack = [e.dst for e in loop.outbound if e.output == out]
        while stack:
            nid = stack.pop()
            if nid not in body:
                body.add(nid)
                stack.extend(e.dst for e in by_id[nid].outbound)
        for nid in sorted(body, key=lambda x: by_id[x].index):
            node = by_id[nid]
            where = f"{prefix}.nodes[{node.index}]"
            if node.loop is not None:
                errors.add(where, f"node '{nid}' is in the bodies of both '{node.loop}' and '{loop.id}'")
                continue
            if node.cls.body_output is not None:
                errors.add(where, f"loop '{nid}' is inside the body of loop '{loop.id}'; nested loops are not "
                                  "supported (run the inner loop in a workflow of its own)")
            for e in node.inbound:
                if e.src == loop.id and e.output != out:
                    errors.add(where, f"node '{nid}' is in the body of loop '{loop.id}' (it follows its "
                                      f"'{out}' output) and cannot also follow its '{e.output}' output")
                elif e.src not in body and e.src != loop.id:
                    errors.add(where, f"node '{nid}' is in the body of loop '{loop.id}' (it follows its "
                                      f"'{out}' output) and cannot also have an input from '{e.src}'")
            node.loop = loop.id
        loop.body = [n.id for n in ordered if n.id in body]


def _check_references(ordered: list[PlannedNode], errors: _Errors, prefix: str) -> None:
    before = ancestors(ordered)
    by_id = {n.id: n for n in ordered}
    for node in ordered:
        where = f"{prefix}.nodes[{node.index}].config"
        for path, text in walk_strings(node.config):
            try:
                refs = refs_in(text)
            except TemplateError as exc:
                errors.add(_config_field(where, path), str(exc))
                continue
            for ref in refs:
                if ref.head == LOOP:
                    if node.loop is None:
                        errors.add(_config_field(where, path),
                                   f"'{{{{{ref.text}}}}}': 'loop' is only known inside a loop's body")
                    continue
                target = by_id.get(ref.head)
                if target is not None and target.loop is not None and target.loop != node.loop:
                    errors.add(_config_field(where, path),
                               f"'{{{{{ref.text}}}}}' refers to '{ref.head}', which runs once per item inside "
                               f"loop '{target.loop}'; use '{{{{{target.loop}.results}}}}'")
                    continue
                if ref.head in (TRIGGER, INPUT) or ref.head in before[node.id]:
                    continue
                reason = "does not exist" if ref.head not in before else f"does not run before '{node.id}'"
                errors.add(_config_field(where, path),
                           f"'{{{{{ref.text}}}}}' refers to node '{ref.head}', which {reason}")


def validated_config(cls: type[Node], config: dict[str, Any], *, resolved: bool) -> BaseModel:
    """Validate a (resolved) config against the node's schema; errors carry the config field."""
    model: BaseModel = cls.Config.model_validate(config, context={"resolved": resolved})
    return model
