"""AutomateOS engine: RQ workers that run workflows, plus a health endpoint."""

import automateos_common  # noqa: F401  (first: its import guard keeps httpx's CLI out of every process)
