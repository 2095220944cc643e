"""Development and test tooling: real Redis/PostgreSQL launchers, the dev gateway, the process stack."""

import automateos_common  # noqa: F401  (first: its import guard keeps httpx's CLI out of every process)
