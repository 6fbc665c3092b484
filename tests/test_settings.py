"""Settings: the original's names as aliases; a bad value is one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow_service.settings import Settings, SettingsError, load_settings, reference_markdown


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "DATABASE_URL",
        "SQLALCHEMY_DATABASE_URI",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "MAX_CONTENT_LENGTH",
        "PORT",
        "HOST",
        "S3_BUCKET",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_the_embedded_service() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///./workflow-service.db"
    assert settings.redis_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.s3_bucket == "workflow-service"
    assert settings.s3_region_name == "us-east-1"
    assert settings.s3_presigned_timeout == 604800


def test_original_names_are_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLALCHEMY_DATABASE_URI", "postgresql://u:p@db:5432/workflow")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://redis:6379/0")
    settings = load_settings()
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/workflow"
    assert settings.redis_url == "redis://redis:6379/0"


def test_new_name_wins_over_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLALCHEMY_DATABASE_URI", "postgresql://old/db")
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///./new.db")
    assert load_settings().database_url == "sqlite+aiosqlite:///./new.db"


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("PORT", "eighty", "PORT"),
        ("PORT", "70000", "PORT"),
        ("MAX_CONTENT_LENGTH", "-1", "MAX_CONTENT_LENGTH"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL"),
        ("SQLALCHEMY_DATABASE_URI", "oracle://x", "SQLALCHEMY_DATABASE_URI"),
        ("CELERY_BROKER_URL", "amqp://guest@rabbit//", "CELERY_BROKER_URL"),
        ("S3_PRESIGNED_TIMEOUT", "0", "S3_PRESIGNED_TIMEOUT"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL"),
    ],
)
def test_bad_value_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    assert named in message


def test_every_setting_is_described_and_the_reference_is_current() -> None:
    undocumented = [name for name, info in Settings.model_fields.items() if not info.description]
    assert undocumented == []
    committed = (Path(__file__).parents[1] / "docs" / "configuration-reference.md").read_text()
    assert committed == reference_markdown(), "run `make docs`"
