"""A test Dovecot that also accepts OAuth access tokens (SASL XOAUTH2 and OAUTHBEARER).

Its ``oauth2`` passdb checks each token at ``introspection_url`` (a
tests.services.oauth_provider.OAuthProvider) with ``introspection_mode = post``
(RFC 7662), takes the login from ``username_attribute = username`` and requires
``active = true``. Passwords (passwd-file) still work for PLAIN/LOGIN, so tests can
deliver mail as before.
"""

from __future__ import annotations

import os

from .dovecot import DovecotServer


class OAuthDovecotServer(DovecotServer):
    def __init__(self, tmpdir, introspection_url: str):
        super().__init__(tmpdir)
        self.introspection_url = introspection_url

    @property
    def oauth_args_path(self):
        return self._require_runtime() / "oauth2.conf.ext"

    def _config_text(self) -> str:
        text = super()._config_text()
        self.oauth_args_path.write_text(
            f"introspection_mode = post\n"
            f"introspection_url = {self.introspection_url}\n"
            f"username_attribute = username\n"
            f"active_attribute = active\n"
            f"active_value = true\n"
            f"force_introspection = yes\n",
            encoding="utf-8")
        os.chmod(self.oauth_args_path, 0o644)
        text = text.replace("auth_mechanisms = plain login",
                            "auth_mechanisms = plain login xoauth2 oauthbearer")
        marker = "passdb {\n  driver = passwd-file\n"
        assert marker in text
        oauth = (f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                 f"  args = {self.oauth_args_path}\n}}\n")
        return text.replace(marker, oauth + marker + "  mechanisms = plain login\n")
