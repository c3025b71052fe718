"""The platform itself on Kubernetes (issue 9): one values file (``values``) rendered into
the platform's own objects (``manifests``), which ``labdeck k8s render --values`` prints.

What the platform then runs (model deployments, workspaces) renders its own objects in
``compute.manifests`` and ``workspaces.manifests``; leader election and images are not here yet.
"""
