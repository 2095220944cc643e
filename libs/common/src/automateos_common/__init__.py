"""AutomateOS shared plumbing: settings, errors, token verification, queue, run state and the node SDK."""

import sys as _sys

# httpx imports its command-line client (rich, pygments, click: ~5 MB a process) whenever those happen to be
# installed, and here they are (cel's own command line needs them). No AutomateOS process runs httpx's CLI:
# a None entry makes `import httpx` take its own fallback for a missing CLI. Each service's package imports
# this package first, so the entry is there before any httpx import (checked by tests/unit/test_lean_imports.py).
if "httpx" not in _sys.modules:
    _sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
