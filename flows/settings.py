"""Process settings from the environment (prefix BASCULE_), read once by the composition root."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where bascule keeps its state; secrets are not here (see flows.secrets)."""

    model_config = SettingsConfigDict(env_prefix="BASCULE_", extra="ignore")

    data_dir: Path = Path(".bascule")
    database_url: str | None = None
    prefect_home: Path | None = None
    log_level: str = "INFO"
    shared_limits: bool = False  # Prefect global concurrency limits per source account (server + workers)
    account_slots: int = 1       # workers allowed to call one source account at the same time
    pacing: bool = True          # pace calls at each account's published rates (off only against the sandbox)

    @property
    def database(self) -> str:
        """BASCULE_DATABASE_URL, or a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'bascule.db').resolve()}"

    @property
    def prefect_dir(self) -> Path:
        return (self.prefect_home or self.data_dir / "prefect").resolve()
