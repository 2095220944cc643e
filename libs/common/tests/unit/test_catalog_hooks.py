from automateos_common import catalog


def test_a_hook_value_carries_the_triggers_options():
    value = catalog.hook_value(3, 9, "PUT", {"auth": {"type": "hmac", "credential": 4}, "note": "a:b"})
    assert value.startswith("3:9:PUT:")
    assert catalog.parse_hook_value(value) == catalog.HookTarget(
        workflow_id=3, owner_id=9, method="PUT", options={"auth": {"type": "hmac", "credential": 4}, "note": "a:b"})


def test_a_hook_without_options_is_the_short_form():
    assert catalog.hook_value(3, 9, "GET") == "3:9:GET"
    assert catalog.hook_value(3, 9, "GET", {}) == "3:9:GET"
    assert catalog.parse_hook_value(b"3:9:GET") == catalog.HookTarget(3, 9, "GET", {})


def test_entries_written_before_methods_and_options_still_parse():
    assert catalog.parse_hook_value("3:9") == catalog.HookTarget(3, 9, "POST", {})
    assert catalog.parse_hook_value(None) is None
