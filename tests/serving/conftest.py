"""Fixtures shared by the model-server suites.

``trained`` and ``servers`` (real models, and ``labdeck serve`` processes on them) live in
``models_kit``; they are imported here, once, so that every module shares one session-wide
instance of each.
"""

from tests.serving.models_kit import servers, trained  # noqa: F401
