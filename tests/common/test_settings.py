"""Settings: names are stable and documented, bad values fail at start-up naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from common.settings import SettingMissing, Settings

ROOT = Path(__file__).resolve().parents[2]


CONVENTIONAL = {"redis_url": "REDIS_URL", "discord_token": "DISCORD_TOKEN"}


def env_name(field: str) -> str:
    return CONVENTIONAL.get(field, f"EASEL_{field.upper()}")


@pytest.mark.parametrize("document", [".env.example", "README.md"])
def test_every_setting_is_documented(document: str) -> None:
    text = (ROOT / document).read_text()
    missing = [env_name(f) for f in Settings.model_fields if env_name(f) not in text]
    assert not missing, f"{document} does not mention {missing}"


def test_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://env:6379/1")
    monkeypatch.setenv("EASEL_WEBUI_URL", "http://gpu:7860/")
    monkeypatch.setenv("EASEL_MAX_STEPS", "42")
    settings = Settings()
    assert settings.redis_url == "redis://env:6379/1"
    assert settings.require_webui_url() == "http://gpu:7860"
    assert settings.limits().max_steps == 42
    assert Settings(redis_url="redis://flag:1").redis_url == "redis://flag:1"  # a flag beats the environment


def test_missing_urls_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("EASEL_WEBUI_URL", raising=False)
    settings = Settings(_env_file=None)
    with pytest.raises(SettingMissing, match="REDIS_URL is not set"):
        settings.require_redis_url()
    with pytest.raises(SettingMissing, match="EASEL_WEBUI_URL is not set"):
        settings.require_webui_url()


def test_bad_values_are_refused_not_rewritten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASEL_MAX_STEPS", "1000")
    with pytest.raises(ValidationError, match="max_steps"):
        Settings()
    monkeypatch.setenv("EASEL_MAX_STEPS", "20")
    monkeypatch.setenv("EASEL_REDIS_PREFIX", "has spaces")
    with pytest.raises(ValidationError, match="redis_prefix"):
        Settings()


def test_secrets_do_not_leak_into_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EASEL_WEBUI_USERNAME", "me")
    monkeypatch.setenv("EASEL_WEBUI_PASSWORD", "hunter2")
    settings = Settings()
    assert "hunter2" not in repr(settings)
    assert settings.webui_auth() == ("me", "hunter2")
