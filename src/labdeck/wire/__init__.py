"""HTTP plumbing shared by every API family: ASGI types, JSON responses, error shapes,
and the MLflow RPC router. Areas' ``api.py`` modules build on it; it imports no area."""
