"""The web application's settings: from the environment (prefix BASCULE_WEB_) or given to create_app. Secrets are
SecretStr and never shown; the session key and the ProConnect client secret come from the environment (or a Prefect
Secret block read by the CLI), never from a file of the repository."""

from __future__ import annotations

import secrets
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["WebSettings"]

DEFAULT_SCOPES = "openid email given_name usual_name uid siret idp_id organizational_unit"


class WebSettings(BaseSettings):
    """Where the state is, how agents log in, how pages look."""

    model_config = SettingsConfigDict(env_prefix="BASCULE_WEB_", extra="ignore", frozen=True)

    database_url: str
    public_url: str = "http://127.0.0.1:8080"     # what agents' browsers reach (behind the reverse proxy)
    # Signs the session cookie; several uvicorn workers must share it. Unset: a random key per process (sessions
    # end when it restarts), fine for one process on a laptop.
    session_secret: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_urlsafe(48)))
    session_max_age: int = 8 * 3600               # seconds; shorter than ProConnect's 12 h SSO (login is silent)
    secure_cookies: bool | None = None            # None: when public_url is https
    theme: Literal["dsfr", "neutral"] = "neutral" # the DSFR look is reserved for State services (contracts/dsfr.md)
    entity: str = "République\nFrançaise"          # the bloc-marque's lines (DSFR theme)
    service_name: str = "bascule"
    service_tagline: str = "Passage à Visio : économies, assistance et pilotage"
    # ProConnect (OIDC). Unset: nobody can log in (the pages say so); the JSON API too.
    oidc_discovery_url: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = DEFAULT_SCOPES
    prefect_ui_url: str | None = None             # links from the console to the runs
    resend_per_minute: int = 5                    # invitations one agent may resend per minute
    lookup_limit: int = 20

    @property
    def cookies_secure(self) -> bool:
        return self.secure_cookies if self.secure_cookies is not None else self.public_url.startswith("https://")

    @property
    def base(self) -> str:
        return self.public_url.rstrip("/")

    @property
    def redirect_uri(self) -> str:
        """The callback registered with ProConnect (exact match, so built one way only)."""
        return f"{self.base}/login/callback"

    @property
    def logout_redirect_uri(self) -> str:
        return f"{self.base}/logout/callback"

    @property
    def login_enabled(self) -> bool:
        return bool(self.oidc_discovery_url and self.oidc_client_id and self.oidc_client_secret)

    @property
    def provider_origin(self) -> str | None:
        """The ProConnect origin (the CSP lets forms lead there: logout is a POST that redirects to it)."""
        if not self.oidc_discovery_url:
            return None
        parts = urlsplit(self.oidc_discovery_url)
        return f"{parts.scheme}://{parts.netloc}"
