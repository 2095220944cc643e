"""AutomateOS engine: RQ workers that run workflows, plus a health endpoint."""
