"""Where an artifact URI lives inside labdeck's artifact store.

Runs, logged models and model versions record URIs such as ``mlflow-artifacts:/1/<run>/artifacts``
(the proxied form MLflow clients resolve against this server). ``run_relative_root``
turns one into a path relative to the store root, and refuses URIs that point anywhere
else, because the server only serves what is in its own store.
"""

from __future__ import annotations

from urllib.parse import urlparse

from labdeck.artifacts.paths import safe_path
from labdeck.artifacts.store import ArtifactStore
from labdeck.errors import InvalidParameter


def run_relative_root(uri: str, store: ArtifactStore) -> str:
    """The store-relative path of ``uri``; InvalidParameter if it is not in ``store``."""
    if uri.startswith("mlflow-artifacts:"):
        parsed = urlparse(uri)
        return safe_path(parsed.path.lstrip("/"))
    root = store.root_uri.rstrip("/")
    if uri == root:
        return ""
    if uri.startswith(root + "/"):
        return safe_path(uri[len(root) + 1 :])
    if uri.startswith("file://"):
        return run_relative_root(urlparse(uri).path, store)
    raise InvalidParameter(
        f"Artifacts at {uri!r} are outside labdeck's artifact store ({store.root_uri}); "
        "read them with a client that can reach that location."
    )
