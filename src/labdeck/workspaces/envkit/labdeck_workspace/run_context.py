"""Tags every MLflow run started in a labdeck workspace with where it came from.

MLflow finds ``LabdeckRunContext`` through the ``mlflow.run_context_provider`` entry point
(see pyproject.toml) and asks it for tags whenever ``mlflow.start_run`` creates a run. In a
workspace (``LABDECK_ENVIRONMENT`` set by the hub, or by the image on Kubernetes) it adds:

- ``labdeck.environment``: the environment's name, so the run's model can later be served
  in the environment it was trained in;
- ``labdeck.workspace``: ``LABDECK_WORKSPACE``, the server (``alice``, or ``alice/big`` for a
  named one);
- ``labdeck.python``: the interpreter's version.

It imports only mlflow and the standard library, and works with MLflow 2.x and 3.x (the
provider interface has not changed between them).
"""

from __future__ import annotations

import os
import platform

from mlflow.tracking.context.abstract_context import RunContextProvider

ENVIRONMENT_VAR = "LABDECK_ENVIRONMENT"
WORKSPACE_VAR = "LABDECK_WORKSPACE"


class LabdeckRunContext(RunContextProvider):
    def in_context(self) -> bool:
        return bool(os.environ.get(ENVIRONMENT_VAR))

    def tags(self) -> dict[str, str]:
        tags = {
            "labdeck.environment": os.environ[ENVIRONMENT_VAR],
            "labdeck.python": platform.python_version(),
        }
        workspace = os.environ.get(WORKSPACE_VAR)
        if workspace:
            tags["labdeck.workspace"] = workspace
        return tags
