"""Identity and permissions: users, teams, tokens, sessions, OIDC login and access checks."""
