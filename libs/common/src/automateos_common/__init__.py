"""AutomateOS shared plumbing: settings, errors, token verification, queue, run state and the node SDK."""
