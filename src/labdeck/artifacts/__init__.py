"""Artifact storage: one interface, a local-folder and an S3 implementation, path safety,
URI resolution, and MLflow's proxied artifact endpoints."""
