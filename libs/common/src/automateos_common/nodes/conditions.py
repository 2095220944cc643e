"""Conditions: CEL (Common Expression Language), never Python `eval`.

CEL is not Turing-complete, has no attribute access to host objects and no I/O, so an
expression cannot escape the way n8n's JavaScript expressions did (CVE-2025-68613,
CVE-2026-1470). `{{...}}` references are not pasted into the expression text: each becomes a
CEL variable bound to the referenced value, so data can never become code.

    "{{action-1.status}} == 200"                       -> _r0 == 200, _r0 bound to the status
    "{{trigger.payload.amount}} > 100 && input.ok"      -> input is this node's input
    "nodes['action-1'].body.items.size() > 0"           -> nodes maps node id -> output
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import NodeExecutionError
from .templates import TEMPLATE_RE, Ref, TemplateError, parse_ref

MAX_CONDITION_LENGTH = 4000


def _load_cel() -> ModuleType:
    """The CEL engine: the package's Rust extension (`cel.cel`), without the package's own __init__.

    `import cel` also imports the package's command-line tool (prompt_toolkit, typer, rich): about
    17 MB resident in every process that checks or evaluates a condition (the workflows service, each
    engine worker). Only `compile` and `Context` are used here, both from the extension. When the
    whole package is imported already, that is used; when the layout is not the expected one, the
    whole package is imported.
    """
    for name in ("cel.cel", "cel"):
        if name in sys.modules:
            return sys.modules[name]
    spec = importlib.util.find_spec("cel")  # a top-level package: found, not run
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"cel{suffix}"
            if path.is_file():
                loader = importlib.machinery.ExtensionFileLoader("cel.cel", str(path))
                ext_spec = importlib.util.spec_from_file_location("cel.cel", path, loader=loader)
                assert ext_spec is not None
                module = importlib.util.module_from_spec(ext_spec)
                loader.exec_module(module)
                sys.modules["cel.cel"] = module  # what the package's own `from .cel import *` would find
                return module
    return importlib.import_module("cel")


cel = _load_cel()


class ConditionError(ValueError):
    pass


SCOPE_NAMES = ("trigger", "input", "nodes")


@dataclass(frozen=True)
class CompiledCondition:
    source: str
    expression: str
    refs: tuple[Ref, ...]
    program: Any
    # The scope names the expression mentions: only those are handed to CEL, which converts every
    # value it is given (every node's whole output, for `nodes`) whether the expression reads it or not.
    uses: frozenset[str] = frozenset(SCOPE_NAMES)

    def evaluate(self, scope: Mapping[str, Any], nodes: Mapping[str, Any]) -> Any:
        variables: dict[str, Any] = {}
        if "trigger" in self.uses:
            variables["trigger"] = scope.get("trigger")
        if "input" in self.uses:
            variables["input"] = scope.get("input")
        if "nodes" in self.uses:
            variables["nodes"] = dict(nodes)
        try:
            for i, ref in enumerate(self.refs):
                variables[f"_r{i}"] = ref.lookup(scope)
        except TemplateError as exc:
            raise ConditionError(f"condition '{self.source}' failed: {exc}") from None
        try:
            return self.program.execute(cel.Context(variables))
        except Exception as exc:  # the library raises plain RuntimeError/TypeError/ValueError
            raise ConditionError(f"condition '{self.source}' failed: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


@lru_cache(maxsize=1024)
def compile_condition(source: str) -> CompiledCondition:
    if len(source) > MAX_CONDITION_LENGTH:
        raise ConditionError(f"condition longer than {MAX_CONDITION_LENGTH} characters")
    refs: list[Ref] = []

    def substitute(m: Any) -> str:
        refs.append(parse_ref(m.group(1)))
        return f"_r{len(refs) - 1}"

    try:
        expression = TEMPLATE_RE.sub(substitute, source)
    except TemplateError as exc:
        raise ConditionError(str(exc)) from None
    if "{{" in expression:
        raise ConditionError("unclosed '{{' in condition")
    if not expression.strip():
        raise ConditionError("condition is empty")
    try:
        program = cel.compile(expression)
    except Exception as exc:
        raise ConditionError(f"not a valid CEL expression: {_first_line(exc)}") from None
    uses = frozenset(name for name in SCOPE_NAMES if re.search(rf"\b{name}\b", expression))
    return CompiledCondition(source=source, expression=expression, refs=tuple(refs), program=program, uses=uses)


def condition_issues(source: str, field: str) -> list[tuple[str, str]]:
    """Save-time check for a node's condition field: [(field, issue)] when it does not compile."""
    try:
        compile_condition(source)
    except ConditionError as exc:
        return [(field, str(exc))]
    return []


def evaluate_bool(source: str, scope: Mapping[str, Any], outputs: Mapping[str, Any], *, what: str = "") -> bool:
    """Evaluate a condition at run time; anything but true/false fails the step (NodeExecutionError).

    `what` prefixes the message (e.g. "case 'big' (cases[0]): ") so the user finds the condition."""
    try:
        value = compile_condition(source).evaluate(scope, outputs)
    except ConditionError as exc:
        raise NodeExecutionError(f"{what}{exc}") from None
    if not isinstance(value, bool):
        raise NodeExecutionError(f"{what}condition must be true or false, got {type(value).__name__}: {value!r:.100}")
    return value
