"""The job's call data as the ingress writes it: a zlib stream RQ reads, built without deflate."""

import json
import zlib

import pytest

from automateos_common.queue import RUN_JOB, zlib_stored


@pytest.mark.parametrize("size", [0, 1, 97, 4096, 5000])
def test_zlib_stored_is_zlib_s_own_stored_stream(size):
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert zlib_stored(data) == zlib.compress(data, 0)
    assert zlib.decompress(zlib_stored(data)) == data


def test_a_run_s_call_data_reads_back_as_rq_reads_it():
    call = [RUN_JOB, None, ["01a2312e-4493-7bc7-9258-c4c53930b44a"], {}]
    assert json.loads(zlib.decompress(zlib_stored(json.dumps(call).encode()))) == call
