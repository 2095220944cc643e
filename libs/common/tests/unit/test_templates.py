"""`{{...}}` references: the grammar, malformed input, and resolution against a scope."""

from __future__ import annotations

from typing import Any

import pytest

from automateos_common.nodes.templates import Ref, TemplateError, has_template, refs_in, resolve, walk_strings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{trigger.payload}}", [Ref(head="trigger", path=("payload",), text="trigger.payload")]),
        ("{{action-1.status}}", [Ref(head="action-1", path=("status",), text="action-1.status")]),
        ("{{input}}", [Ref(head="input", path=(), text="input")]),
        ("{{ action-1.body.items[0].name }}",
         [Ref(head="action-1", path=("body", "items", 0, "name"), text="action-1.body.items[0].name")]),
        ('{{a.body["user-id"]}}', [Ref(head="a", path=("body", "user-id"), text='a.body["user-id"]')]),
        ("{{a['k e y']}}", [Ref(head="a", path=("k e y",), text="a['k e y']")]),
        ('{{a["say \\"hi\\""]}}', [Ref(head="a", path=('say "hi"',), text='a["say \\"hi\\""]')]),
        ("{{a[ -1 ]}}", [Ref(head="a", path=(-1,), text="a[ -1 ]")]),
        ("{{a.b-c.$d}}", [Ref(head="a", path=("b-c", "$d"), text="a.b-c.$d")]),
        ("{{a.0}}", [Ref(head="a", path=("0",), text="a.0")]),
        ("Bearer {{a.token}} / {{b}}",
         [Ref(head="a", path=("token",), text="a.token"), Ref(head="b", path=(), text="b")]),
        ("no references here", []),
    ],
)
def test_refs_in_parses_the_grammar(text: str, expected: list[Ref]) -> None:
    assert refs_in(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{}}", "'{{}}' is not a reference (expected e.g. {{trigger.payload}})"),
        ("{{   }}", "'{{}}' is not a reference (expected e.g. {{trigger.payload}})"),
        ("{{.x}}", "'{{.x}}' is not a reference (expected e.g. {{trigger.payload}})"),
        ("{{-a}}", "'{{-a}}' is not a reference (expected e.g. {{trigger.payload}})"),
        ("{{a..b}}", "'{{a..b}}' is not a reference: unexpected '..b'"),
        ("{{a.b c}}", "'{{a.b c}}' is not a reference: unexpected ' c'"),
        ("{{a + 1}}", "'{{a + 1}}' is not a reference: unexpected ' + 1'"),
        ("{{a[x]}}", "'{{a[x]}}' is not a reference: unexpected '[x]'"),
        ("{{a[0.5]}}", "'{{a[0.5]}}' is not a reference: unexpected '[0.5]'"),
        ("{{__import__('os')}}", "'{{__import__('os')}}' is not a reference: unexpected '('os')'"),
        ("hello {{ a.b", "unclosed '{{' (a reference is written {{node-id.field}})"),
        ("{{a}} and {{", "unclosed '{{' (a reference is written {{node-id.field}})"),
    ],
)
def test_malformed_references_raise(text: str, message: str) -> None:
    with pytest.raises(TemplateError) as excinfo:
        refs_in(text)
    assert str(excinfo.value) == message


def test_has_template() -> None:
    assert has_template("x {{a}} y") is True
    assert has_template("x { {a} } y") is False


def test_walk_strings_names_every_string_with_its_path() -> None:
    value = {"url": "u", "headers": {"X": "h"}, "list": ["a", {"b": "c"}], "n": 1, "none": None}
    assert list(walk_strings(value)) == [
        ("url", "u"), ("headers.X", "h"), ("list[0]", "a"), ("list[1].b", "c"),
    ]


SCOPE: dict[str, Any] = {
    "trigger": {
        "payload": {"n": 7, "s": "text", "none": None, "flag": False, "items": [10, 20, 30],
                    "obj": {"k": [True]}, "user-id": "u-1", "echo": "{{trigger.payload.n}}"},
        "method": "POST",
    },
    "action-1": {"status": 200, "body": {"ok": True}},
    "input": {"status": 200},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        # Exactly one reference: the JSON type is kept.
        ("{{trigger.payload.obj}}", {"k": [True]}),
        ("{{trigger.payload.n}}", 7),
        ("{{trigger.payload.items}}", [10, 20, 30]),
        ("{{trigger.payload.none}}", None),
        ("{{trigger.payload.flag}}", False),
        ("{{ trigger.payload.n }}", 7),
        ("{{action-1.status}}", 200),
        ("{{input.status}}", 200),
        ('{{trigger.payload["user-id"]}}', "u-1"),
        # Interpolation: strings as-is, null as "", other values as JSON.
        ("id={{trigger.payload.s}}", "id=text"),
        ("n={{trigger.payload.none}};", "n=;"),
        ("n={{trigger.payload.n}}", "n=7"),
        ("{{trigger.payload.obj}}!", '{"k":[true]}!'),
        ("{{trigger.payload.items}}{{trigger.payload.flag}}", "[10,20,30]false"),
        ("{{trigger.method}} {{action-1.status}}", "POST 200"),
        # Missing keys and bad indexes are null.
        ("{{trigger.payload.missing}}", None),
        ("{{trigger.payload.missing.deeper}}", None),
        ("{{trigger.payload.n.k}}", None),
        ("{{trigger.payload.s[0]}}", None),
        ("x{{trigger.payload.missing}}x", "xx"),
        # List indexes, negative ones from the end, out of range null.
        ("{{trigger.payload.items[0]}}", 10),
        ("{{trigger.payload.items[-1]}}", 30),
        ("{{trigger.payload.items[-3]}}", 10),
        ("{{trigger.payload.items[3]}}", None),
        ("{{trigger.payload.items[-4]}}", None),
        ("{{trigger.payload.items.1}}", 20),
        ("{{trigger.payload.obj.k[0]}}", True),
        # No reference: unchanged.
        ("plain text", "plain text"),
    ],
)
def test_resolve_string(template: str, expected: Any) -> None:
    assert resolve(template, SCOPE) == expected


def test_resolve_walks_nested_configs() -> None:
    config = {
        "url": "https://x.test/{{trigger.payload.n}}",
        "headers": {"X-Status": "{{action-1.status}}"},
        "body": ["{{trigger.payload.items}}", {"deep": "{{trigger.payload.none}}"}, 5, None, True],
    }
    assert resolve(config, SCOPE) == {
        "url": "https://x.test/7",
        "headers": {"X-Status": 200},
        "body": [[10, 20, 30], {"deep": None}, 5, None, True],
    }


def test_resolved_data_is_not_resolved_again() -> None:
    # The payload holds "{{trigger.payload.n}}": data, not a template, so it stays literal.
    assert resolve("{{trigger.payload.echo}}", SCOPE) == "{{trigger.payload.n}}"
    assert resolve("say {{trigger.payload.echo}}", SCOPE) == "say {{trigger.payload.n}}"
    assert resolve({"body": "{{trigger.payload}}"}, SCOPE)["body"]["echo"] == "{{trigger.payload.n}}"


def test_resolve_refuses_a_node_that_has_not_run() -> None:
    with pytest.raises(TemplateError) as excinfo:
        resolve("{{action-2.status}}", SCOPE)
    assert str(excinfo.value) == "'{{action-2.status}}' refers to 'action-2', which has not run"


def test_resolve_leaves_non_strings_alone() -> None:
    assert resolve(42, SCOPE) == 42
    assert resolve(None, SCOPE) is None
    assert resolve([1.5, False], SCOPE) == [1.5, False]
