"""`python -m automateos_common.migrate SCRIPT_LOCATION VERSION_TABLE`: upgrade one service's tables to head.

Run by `automateos_common.db.migrate` at a service's start, with the database URL in the
environment (`AUTOMATEOS_MIGRATE_DATABASE_URL`), so that Alembic lives only in this short process.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .db import MIGRATE_URL_ENV, make_engine, run_migrations
from .logs import setup_logging


def main(argv: list[str]) -> int:
    if len(argv) != 2 or MIGRATE_URL_ENV not in os.environ:
        sys.stderr.write(f"usage: {MIGRATE_URL_ENV}=URL python -m automateos_common.migrate SCRIPT_LOCATION "
                         "VERSION_TABLE\n")
        return 2
    setup_logging(os.environ.get("AUTOMATEOS_LOG_LEVEL", "INFO"))
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = make_engine(os.environ[MIGRATE_URL_ENV])
    try:
        run_migrations(engine, Path(argv[0]), argv[1])
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
