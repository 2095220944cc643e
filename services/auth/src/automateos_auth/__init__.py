"""AutomateOS auth service: users, login, RS256 access tokens, JWKS."""

import automateos_common  # noqa: F401  (first: its import guard keeps httpx's CLI out of every process)
