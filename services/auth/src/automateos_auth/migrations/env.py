from automateos_common.db import run_alembic_env
from automateos_auth import models

run_alembic_env(models.METADATA)
