from automateos_auth import models
from automateos_common.db import run_alembic_env

run_alembic_env(models.METADATA)
