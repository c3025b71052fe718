"""Settings: flag > LABDECK_* env > TOML file > default, and every setting documented."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from labdeck.cli import cli
from labdeck.config import Settings


def test_precedence_flag_env_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "labdeck.toml"
    config.write_text('data_dir = "/from/file"\n[server]\nport = 7000\nhost = "127.0.0.2"\n[logging]\nlevel = "debug"\n')
    monkeypatch.setenv("LABDECK_SERVER__PORT", "7100")
    monkeypatch.setenv("LABDECK_DATA_DIR", "/from/env")

    settings = Settings.load(config, server={"port": 7200})
    assert settings.server.port == 7200  # flag beats env and file
    assert settings.data_dir == Path("/from/env")  # env beats file
    assert settings.server.host == "127.0.0.2"  # file beats default
    assert settings.logging.level == "DEBUG"
    assert settings.database.pool_size == 8  # default

    monkeypatch.delenv("LABDECK_SERVER__PORT")
    assert Settings.load(config).server.port == 7000


def test_defaults_are_the_embedded_platform(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = Settings.load(None)
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8080)
    assert settings.data_dir == tmp_path / ".labdeck"
    assert settings.database_url == f"sqlite:///{tmp_path / '.labdeck' / 'labdeck.db'}"
    assert settings.artifacts_uri == str(tmp_path / ".labdeck" / "artifacts")


def test_every_setting_is_documented():
    undocumented = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            if not field.description:
                undocumented.append(prefix + name)
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name}.")

    walk(Settings, "")
    assert undocumented == []


def test_bad_values_are_refused_with_the_field_named(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nport = 99999\n")
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(config)])
    assert result.exit_code == 2
    assert "server.port" in result.output

    config.write_text("[server]\nportt = 1\n")
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(config)])
    assert result.exit_code == 2 and "portt" in result.output


def test_config_show_prints_effective_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LABDECK_ARTIFACTS__URI", "s3://bucket/prefix")
    result = CliRunner().invoke(cli, ["config", "show", "--data-dir", str(tmp_path), "--port", "9001"])
    assert result.exit_code == 0, result.output
    assert "server.port = 9001" in result.output
    assert 'artifacts.uri = "s3://bucket/prefix"' in result.output
    assert f'data_dir = "{tmp_path}"' in result.output
    assert "database.url = (unset)" in result.output

    as_json = json.loads(CliRunner().invoke(cli, ["config", "show", "--json", "--data-dir", str(tmp_path)]).output)
    assert as_json["server"]["port"] == 8080
    assert as_json["artifacts"]["uri"] == "s3://bucket/prefix"
