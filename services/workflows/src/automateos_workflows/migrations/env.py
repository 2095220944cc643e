from automateos_common.db import run_alembic_env
from automateos_workflows import models

run_alembic_env(models.METADATA)
