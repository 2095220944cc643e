"""AutomateOS ingress: webhooks and manual runs in, jobs on the queue, 202 out."""

import automateos_common  # noqa: F401  (first: its import guard keeps httpx's CLI out of every process)
