"""AutomateOS workflows service: workflow CRUD, definitions, run history."""
