"""AutomateOS auth service: users, login, RS256 access tokens, JWKS."""
