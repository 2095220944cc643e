"""`{{...}}` references in node configs: parsing, save-time checks and resolution.

A reference is a path, never code: `{{trigger.payload.items[0].name}}`,
`{{action-1.body["user-id"]}}`. The head is `trigger`, `input` (this node's input), `loop` (in a loop's body) or a node
id (ids may contain `-`); the rest walks dict keys and list indexes. Nothing is evaluated.

A string that is exactly one reference keeps the referenced value's JSON type; otherwise each
reference is rendered into the string (strings as-is, null as "", others as JSON).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..jsonutil import dumps_str

TEMPLATE_RE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_HEAD_RE = re.compile(r"\s*([A-Za-z0-9_][A-Za-z0-9_-]*)")
_DOT_RE = re.compile(r"\.([A-Za-z0-9_$][A-Za-z0-9_$-]*)")
_INDEX_RE = re.compile(r"\[\s*(-?\d+)\s*\]")
_KEY_RE = re.compile(r"""\[\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*\]""")

# Names a template may start with besides node ids.
TRIGGER = "trigger"
INPUT = "input"
LOOP = "loop"  # inside a loop's body: {{loop.item}}, {{loop.index}}, {{loop.node}}
RESERVED_HEADS = frozenset({TRIGGER, INPUT, LOOP})


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Ref:
    head: str
    path: tuple[str | int, ...]
    text: str

    def lookup(self, scope: Mapping[str, Any]) -> Any:
        """Walk the path; a missing key or index gives None (JSON null)."""
        if self.head not in scope:
            raise TemplateError(f"'{{{{{self.text}}}}}' refers to '{self.head}', which has not run")
        value = scope[self.head]
        for seg in self.path:
            if isinstance(value, Mapping):
                value = value.get(str(seg))
            elif isinstance(value, list) and (isinstance(seg, int) or (isinstance(seg, str) and seg.isdigit())):
                idx = int(seg)
                value = value[idx] if -len(value) <= idx < len(value) else None
            else:
                return None
        return value


def parse_ref(inner: str) -> Ref:
    text = inner.strip()
    m = _HEAD_RE.match(inner)
    if not m:
        raise TemplateError(f"'{{{{{text}}}}}' is not a reference (expected e.g. {{{{trigger.payload}}}})")
    head, pos = m.group(1), m.end()
    path: list[str | int] = []
    rest = inner.rstrip()
    while pos < len(rest):
        for regex in (_DOT_RE, _INDEX_RE, _KEY_RE):
            m = regex.match(rest, pos)
            if m:
                break
        else:
            raise TemplateError(f"'{{{{{text}}}}}' is not a reference: unexpected '{rest[pos:pos + 10]}'")
        if regex is _INDEX_RE:
            path.append(int(m.group(1)))
        elif regex is _KEY_RE:
            raw = m.group(1) if m.group(1) is not None else m.group(2)
            path.append(re.sub(r"\\(.)", r"\1", raw))
        else:
            path.append(m.group(1))
        pos = m.end()
    return Ref(head=head, path=tuple(path), text=text)


def refs_in(value: str) -> list[Ref]:
    """Every reference in a string; raises TemplateError on a malformed one or a stray '{{'."""
    refs = [parse_ref(m.group(1)) for m in TEMPLATE_RE.finditer(value)]
    if "{{" in TEMPLATE_RE.sub("", value):
        raise TemplateError("unclosed '{{' (a reference is written {{node-id.field}})")
    return refs


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field path, string) for every string inside a JSON value (dict keys excluded)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from walk_strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk_strings(v, f"{path}[{i}]")


def has_template(value: str) -> bool:
    return TEMPLATE_RE.search(value) is not None


def _render(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return dumps_str(value)


def resolve_string(value: str, scope: Mapping[str, Any]) -> Any:
    matches = list(TEMPLATE_RE.finditer(value))
    if not matches:
        return value
    if len(matches) == 1 and matches[0].span() == (0, len(value)):
        return parse_ref(matches[0].group(1)).lookup(scope)
    return TEMPLATE_RE.sub(lambda m: _render(parse_ref(m.group(1)).lookup(scope)), value)


def resolve(value: Any, scope: Mapping[str, Any]) -> Any:
    """Resolve every reference inside a JSON value (a single pass: resolved data is not re-read)."""
    if isinstance(value, str):
        return resolve_string(value, scope)
    if isinstance(value, Mapping):
        return {k: resolve(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, scope) for v in value]
    return value
