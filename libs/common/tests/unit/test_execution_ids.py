import time
import uuid

from automateos_common.queue import new_execution_id


def test_execution_ids_are_uuid7_and_strictly_increasing_within_a_process():
    ids = [new_execution_id() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5000
    assert all(str(uuid.UUID(i)) == i for i in ids)  # the canonical form, lower-case hex
    parsed = uuid.UUID(ids[0])
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    ms = parsed.int >> 80
    assert abs(ms - time.time_ns() // 1_000_000) < 5_000
