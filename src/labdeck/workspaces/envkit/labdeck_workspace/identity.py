"""Who is asking a workspace's JupyterLab: whoever labdeck's proxy says, and nobody else.

The hub starts JupyterLab with ``--ServerApp.identity_provider_class=
labdeck_workspace.identity.LabdeckIdentityProvider``. labdeck's proxy authenticates the
person (token, password or session cookie), checks that they may reach this server, and
sends three headers (the names are those of ``labdeck.workspaces.routes``, which this
package cannot import):

- ``X-Labdeck-Workspace-Secret``: this server's secret (``LABDECK_WORKSPACE_SECRET``, fresh
  at every start). It proves the request came through the proxy: anything else on the
  machine can reach the loopback port, but does not know the secret.
- ``X-Labdeck-User``: the person's labdeck username (the owner, or an admin).
- ``X-Labdeck-Auth``: ``token`` when they sent a labdeck token, as API clients do: exempt
  from Jupyter's XSRF and Origin checks, as Jupyter's own tokens are. ``cookie`` for a
  browser session: those checks stay on (pages send the ``_xsrf`` cookie back in
  ``X-XSRFToken``, and WebSockets must come from the page's own origin).

Without a configured secret nobody gets in. There is no login form and no token URL to
copy: a request without the headers gets 403 (API) or is sent to a page saying to open
the server through labdeck.

It imports only jupyter_server, traitlets and the standard library, since it runs inside
every environment, whatever labdeck version built it.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.base.handlers import JupyterHandler
from traitlets import default

SECRET_ENV = "LABDECK_WORKSPACE_SECRET"
SECRET_HEADER = "X-Labdeck-Workspace-Secret"
USER_HEADER = "X-Labdeck-User"
AUTH_HEADER = "X-Labdeck-Auth"


class ThroughLabdeckOnly(JupyterHandler):
    """Where Jupyter sends a browser it could not identify (its login URL)."""

    @allow_unauthenticated
    def get(self) -> None:
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("This JupyterLab is reached through labdeck only: open it from labdeck, at /user/<name>/.\n")


class LabdeckIdentityProvider(IdentityProvider):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Taken out of the environment, so that kernels and terminals started by this server
        # do not inherit it: code in a notebook has no use for it.
        self._secret = os.environ.pop(SECRET_ENV, "")
        if not self._secret:
            self.log.warning("%s is not set: every request will be refused.", SECRET_ENV)

    @default("token")
    def _no_token(self) -> str:
        return ""  # nothing to copy into a URL: labdeck's proxy is the only way in

    @property
    def login_available(self) -> bool:
        return False

    @property
    def logout_available(self) -> bool:
        return False  # sessions are labdeck's: people log out of labdeck

    def get_handlers(self) -> list[tuple[str, object]]:
        return [(r"/login", ThroughLabdeckOnly)]

    def get_user(self, handler: JupyterHandler) -> User | None:
        headers = handler.request.headers
        sent = headers.get(SECRET_HEADER, "")
        username = headers.get(USER_HEADER, "").strip()
        if not (self._secret and sent and username):
            return None
        if not hmac.compare_digest(sent.encode(), self._secret.encode()):
            return None
        # read by IdentityProvider.is_token_authenticated: no XSRF or Origin check for tokens
        handler._token_authenticated = headers.get(AUTH_HEADER, "") == "token"  # type: ignore[attr-defined]
        return User(username=username)
