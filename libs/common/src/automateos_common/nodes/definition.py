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
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from ..errors import ValidationError, field_path
from .base import Node
from .registry import NodeRegistry
from .templates import INPUT, RESERVED_HEADS, TRIGGER, TemplateError, refs_in, walk_strings

# fullmatch, not match: `$` also matches before a trailing "\n", which let "a\n" through.
NODE_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
MAX_NODES = 200
DEFINITION_KEYS = frozenset({"nodes", "connections"})
NODE_KEYS = frozenset({"id", "type", "config", "name", "notes"})
CONNECTION_KEYS = frozenset({"from", "to"})


@dataclass
class PlannedNode:
    index: int
    id: str
    type: str
    cls: builtins.type[Node]  # builtins: `type` is a field name here
    config: dict[str, Any]
    predecessors: list[str] = field(default_factory=list)


@dataclass
class Plan:
    nodes: list[PlannedNode]  # in execution (topological) order
    trigger_id: str

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
        errors.add(f"{prefix}.{key}", "unknown key (expected 'nodes' and 'connections')")
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
        if ok and cls is not None:
            _check_config(cls, config, f"{where}.config", errors)
            assert isinstance(node_id, str) and isinstance(type_name, str)
            nodes.append(PlannedNode(index=i, id=node_id, type=type_name, cls=cls, config=config))
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
            node.predecessors = [prev.id]
        ordered = nodes
    else:
        ordered = _plan_graph(raw_conns, nodes, trigger, errors, prefix)
    errors.raise_if_any()

    _check_references(ordered, errors, prefix)
    errors.raise_if_any()
    return Plan(nodes=ordered, trigger_id=trigger.id)


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
    seen_edges: set[tuple[str, str]] = set()
    for i, conn in enumerate(raw_conns):
        cw = f"{where}[{i}]"
        if not isinstance(conn, dict):
            errors.add(cw, "must be an object {\"from\", \"to\"}")
            continue
        for key in sorted(set(conn) - CONNECTION_KEYS):
            errors.add(f"{cw}.{key}", "unknown key")
        src, dst = conn.get("from"), conn.get("to")
        bad = False
        for key, value in (("from", src), ("to", dst)):
            if not isinstance(value, str) or value not in by_id:
                errors.add(f"{cw}.{key}", f"no node with id {value!r}")
                bad = True
        if bad:
            continue
        assert isinstance(src, str) and isinstance(dst, str)
        if src == dst:
            errors.add(cw, "a node cannot connect to itself")
        elif (src, dst) in seen_edges:
            errors.add(cw, f"duplicate connection {src} -> {dst}")
        elif by_id[dst] is trigger:
            errors.add(f"{cw}.to", "the trigger cannot have inbound connections")
        else:
            seen_edges.add((src, dst))
            succ[src].append(dst)
            by_id[dst].predecessors.append(src)
    if errors.items:
        return nodes

    # Kahn's algorithm; ties broken by list position so the order is stable and readable.
    indeg = {n.id: len(n.predecessors) for n in nodes}
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


def _check_references(ordered: list[PlannedNode], errors: _Errors, prefix: str) -> None:
    before = ancestors(ordered)
    for node in ordered:
        where = f"{prefix}.nodes[{node.index}].config"
        for path, text in walk_strings(node.config):
            try:
                refs = refs_in(text)
            except TemplateError as exc:
                errors.add(_config_field(where, path), str(exc))
                continue
            for ref in refs:
                if ref.head in (TRIGGER, INPUT) or ref.head in before[node.id]:
                    continue
                reason = "does not exist" if ref.head not in before else f"does not run before '{node.id}'"
                errors.add(_config_field(where, path),
                           f"'{{{{{ref.text}}}}}' refers to node '{ref.head}', which {reason}")


def validated_config(cls: type[Node], config: dict[str, Any], *, resolved: bool) -> BaseModel:
    """Validate a (resolved) config against the node's schema; errors carry the config field."""
    model: BaseModel = cls.Config.model_validate(config, context={"resolved": resolved})
    return model
