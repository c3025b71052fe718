"""Workspaces: a JupyterLab server per person (and per name), in an environment they pick.

- ``environments``: environment definitions (settings), built once with uv into
  ``<data-dir>/envs/<name>`` and reused; the Dockerfiles of their Kubernetes images.
- ``envkit/``: a tiny package installed into every environment (it never imports labdeck):
  the Jupyter identity provider that trusts only labdeck's proxy, and the MLflow run-context
  provider that tags runs with the environment and workspace they came from.
- ``entities``, ``tables``, ``store``: the desired and observed state of each server.
- ``hub``: start, stop, status and adoption, through ``compute/`` (one ``Workload`` per
  server); ``culler``: stops idle and old servers; ``v1``: ``/api/v1/workspaces``.
- ``kube``: a server as a Pod and its objects on Kubernetes (applied, read, deleted for the hub).
- ``routes``: where each running server is reached, shared by the hub and the proxy.
- ``proxy``: ``/user/<name>/[<server>/]...`` forwarded over HTTP and WebSocket.
"""
