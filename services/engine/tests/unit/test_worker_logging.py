"""RQ's per-job INFO lines are kept for DEBUG; the rest of RQ's logging is untouched."""

import logging

import pytest

from automateos_engine.worker import PerJobLinesAtDebug


def _record(msg: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.getLogger("rq.worker").makeRecord("rq.worker", level, __file__, 1, msg, ("w", "q", "j", "id"),
                                                     None)


@pytest.fixture
def rq_logger():
    logger = logging.getLogger("rq.worker")
    level = logger.level
    yield logger
    logger.setLevel(level)


def test_each_job_s_lines_pass_only_when_rq_logs_at_debug(rq_logger):
    quiet = PerJobLinesAtDebug()
    rq_logger.setLevel(logging.INFO)
    assert not quiet.filter(_record("Worker %s: %s: %s (%s)"))  # taken: queue, call, id
    assert not quiet.filter(_record("Worker %s: %s: %s"))  # taken, without the call's description
    rq_logger.setLevel(logging.DEBUG)
    assert quiet.filter(_record("Worker %s: %s: %s (%s)"))


def test_other_lines_of_rq_pass(rq_logger):
    quiet = PerJobLinesAtDebug()
    rq_logger.setLevel(logging.INFO)
    assert quiet.filter(_record("Worker %s: started with PID %s, version %s"))
    assert quiet.filter(_record("Worker %s: %s: %s (%s)", logging.WARNING))  # only the INFO lines are kept back
