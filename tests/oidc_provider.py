"""The single sign-on tests' OpenID Connect provider: tests/oidc_idp (django-allauth's provider) under
Django's runserver on a free loopback port, with a SQLite file and an RSA signing key of its own; its
users and clients are set by its own management commands, as a provider's operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .processes import HOST, ROOT, HttpServer

PASSWORD = "provider-pw-for-tests"


def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class OidcProvider(HttpServer):
    """The provider; `issuer` is what the chat is configured with."""

    def __init__(self, log_dir: Path) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.oidc_idp.settings",
            "PYTHONPATH": str(ROOT),
            "TEST_IDP_DATABASE": str(log_dir / "oidc-provider.sqlite3"),
            "TEST_IDP_PRIVATE_KEY": private_key_pem(),
        }
        super().__init__("oidc-provider", log_dir, env=env)

    @property
    def issuer(self) -> str:
        return self.origin

    def command(self) -> list[str]:
        return [sys.executable, "-m", "django", "runserver", f"{HOST}:{self.port}", "--noreload"]

    def manage(self, *args: str) -> str:
        """Run one of the provider's management commands; return what it printed."""
        done = subprocess.run(
            [sys.executable, "-m", "django", *args], env=self.env, cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def start(self, timeout: float | None = None) -> OidcProvider:
        self.manage("migrate", "--no-input", "-v", "0")
        return super().start(timeout)

    def user_set(self, username: str, **options: str | bool) -> str:
        """Make or change a user (idp_user's options: groups="a,b", email_verified=True); return the sub."""
        argv = ["idp_user", username, "--password", PASSWORD]
        for name, value in options.items():
            flag = "--" + name.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is not False:
                argv += [flag, str(value)]
        return self.manage(*argv)

    def client_set(self, client_id: str, secret: str, redirect_uri: str, *, consent: bool = False) -> None:
        self.manage("idp_client", client_id, secret, redirect_uri, *(["--consent"] if consent else []))
