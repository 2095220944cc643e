from sqlmodel import SQLModel

from automateos_auth import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from automateos_common.db import run_alembic_env

run_alembic_env(SQLModel.metadata)
