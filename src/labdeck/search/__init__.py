"""MLflow's search grammar (filters and order_by) and page tokens, shared by every area
that searches: tracking (runs, experiments, logged models) and the registry."""
