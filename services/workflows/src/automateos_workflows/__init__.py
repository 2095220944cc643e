"""AutomateOS workflows service: workflow CRUD, definitions, run history."""

import automateos_common  # noqa: F401  (first: its import guard keeps httpx's CLI out of every process)
