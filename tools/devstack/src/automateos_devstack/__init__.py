"""Development and test tooling: real Redis/PostgreSQL launchers, the dev gateway, the process stack."""
