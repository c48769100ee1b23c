"""Settings from the environment, secrets from the environment or Prefect, tenant files validated."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from flows.secrets import MissingSecretError, read_secret, secret_block_name
from flows.settings import Settings
from flows.tenant import TenantConfig, TenantFileError
from tests.conftest import REPO

EXAMPLE = (REPO / "tenants" / "example.toml").read_text(encoding="utf-8")


def test_database_defaults_to_sqlite_in_the_data_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BASCULE_DATABASE_URL", raising=False)
    monkeypatch.setenv("BASCULE_DATA_DIR", str(tmp_path))
    assert Settings().database == f"sqlite:///{(tmp_path / 'bascule.db').resolve()}"
    monkeypatch.setenv("BASCULE_DATABASE_URL", "postgresql://bascule@db/bascule")
    assert Settings().database == "postgresql://bascule@db/bascule"


def test_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASCULE_TEST_TOKEN", "t0k3n")
    secret = read_secret("BASCULE_TEST_TOKEN")
    assert secret.get_secret_value() == "t0k3n"
    assert "t0k3n" not in repr(secret) and "t0k3n" not in str(secret)


def test_secret_from_a_prefect_secret_block(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret

    name = f"BASCULE_BLOCK_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.delenv(name, raising=False)
    Secret(value="from-the-block").save(secret_block_name(name), overwrite=True)
    assert read_secret(name).get_secret_value() == "from-the-block"


def test_missing_secret_names_where_it_was_looked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BASCULE_NOWHERE_SECRET", raising=False)
    with pytest.raises(MissingSecretError, match="bascule-nowhere-secret"):
        read_secret("BASCULE_NOWHERE_SECRET")


def _tenant(tmp_path: Path, text: str, *, files: bool = True) -> Path:
    """The tenant file in tmp_path, naming x.ldif and cert.pem beside it (created unless `files` is False)."""
    path = tmp_path / "tenant.toml"
    path.write_text(text.replace("../.bascule/sandbox/directory.ldif", "x.ldif")
                    .replace("../.bascule/sandbox/tls/cert.pem", "cert.pem"), encoding="utf-8")
    if files:
        (tmp_path / "x.ldif").write_text("version: 1\n", encoding="utf-8")
        (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    return path


def test_example_tenant_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    config = TenantConfig.load(_tenant(tmp_path, EXAMPLE))
    assert config.directory.ldif_path == (tmp_path / "x.ldif").resolve()
    assert config.sources.teams is not None and config.sources.teams.ca_file == (tmp_path / "cert.pem").resolve()
    assert config.cost_model.default_annual_unit_cost == 10
    assert {contract.platform for contract in config.contracts} == {"zoom", "teams", "webex"}


@pytest.mark.parametrize(("change", "message"), [
    (("[cost_model]", "[cost_model]\nsurprise = 1"), "cost_model.surprise: Extra inputs are not permitted"),
    (('siret = "11004601800013"', ""), "siret: Field required"),
    (("commit_floor = 0", "commit_floor = 1000"), "commit_floor must not exceed committed_qty"),
    (('kind = "ldif"', 'kind = "ldap"'), "needs url and base_dn"),
    (('access_token_env = "BASCULE_WEBEX_ACCESS_TOKEN"', 'access_token_env = "Bearer abc.def"'),
     "must be the NAME of an environment variable"),
    (("window_days = 30 ", "window_days = 2 "), "release: Value error, window_days .2. must be at least"
                                                "|release: window_days .2. must be at least min_visio_days"),
    (("grace_days = 7 ", "grace_days = -1 "), "release.grace_days: Input should be greater than or equal to 0"),
    (("large_meeting_invitees = 150", "large_meeting_invitees = 150\nmin_days = 3"),
     "release.min_days: Extra inputs are not permitted"),
])
def test_invalid_tenant_files_say_where_and_why(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    old, new = change
    assert old in EXAMPLE
    with pytest.raises(TenantFileError, match=message):
        TenantConfig.load(_tenant(tmp_path, EXAMPLE.replace(old, new, 1)))


@pytest.mark.parametrize(("missing", "setting"), [("x.ldif", "directory.ldif_path"),
                                                  ("cert.pem", "sources.teams.ca_file")])
def test_a_file_the_tenant_names_must_exist_and_the_error_names_it(tmp_path: Path, missing: str,
                                                                   setting: str) -> None:
    path = _tenant(tmp_path, EXAMPLE)
    (tmp_path / missing).unlink()
    with pytest.raises(TenantFileError) as raised:
        TenantConfig.load(path)
    message = str(raised.value)
    assert "\n" not in message and setting in message and str((tmp_path / missing).resolve()) in message
    assert message.endswith("does not exist")
    (tmp_path / missing).mkdir()
    with pytest.raises(TenantFileError, match=f"{setting}: .* is not a file"):
        TenantConfig.load(path)


def test_the_release_policy_defaults_and_its_keep_list_relative_to_the_file(tmp_path: Path) -> None:
    config = TenantConfig.load(_tenant(tmp_path, EXAMPLE))
    policy = config.release.policy()
    assert (policy.min_visio_days, policy.window_days, policy.grace_days) == (3, 30, 7)
    assert config.release.large_meeting_invitees == 150 and config.release.restore_window_days == 30
    text = EXAMPLE.replace('# keep_licence_csv = "keep-licence.csv"', 'keep_licence_csv = "keep.csv"')
    path = _tenant(tmp_path, text)
    with pytest.raises(TenantFileError, match=r"release\.keep_licence_csv: .*keep\.csv does not exist"):
        TenantConfig.load(path)
    (tmp_path / "keep.csv").write_text("email\n", encoding="utf-8")
    assert TenantConfig.load(path).release.keep_licence_csv == (tmp_path / "keep.csv").resolve()
