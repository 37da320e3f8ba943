from pathlib import Path

import pytest

from ttfb.settings import Settings


def test_defaults_mean_embedded(settings: Settings) -> None:
    assert settings.embedded_bus and settings.embedded_store
    assert settings.dashboard_host == "127.0.0.1"
    assert settings.topic("alerts") == "ttfb.alerts"


def test_env_overrides_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TTFB_TOPIC_PREFIX", "staging")
    monkeypatch.setenv("TTFB_KAFKA_BOOTSTRAP", "kafka:9092")
    s = Settings(_env_file=None)
    assert s.topic("commands") == "staging.commands"
    assert not s.embedded_bus


def test_init_beats_env_beats_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("TTFB_TOPIC_PREFIX=fromdotenv\nTTFB_DASHBOARD_PORT=9000\n")
    monkeypatch.delenv("TTFB_TOPIC_PREFIX", raising=False)
    monkeypatch.delenv("TTFB_DASHBOARD_PORT", raising=False)
    assert Settings(_env_file=dotenv).topic_prefix == "fromdotenv"
    monkeypatch.setenv("TTFB_TOPIC_PREFIX", "fromenv")
    s = Settings(_env_file=dotenv)
    assert s.topic_prefix == "fromenv" and s.dashboard_port == 9000
    assert Settings(_env_file=dotenv, topic_prefix="frominit").topic_prefix == "frominit"


def test_secrets_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTFB_SIGNING_KEY", "s3cret-key")
    monkeypatch.setenv("TTFB_CLICKHOUSE_PASSWORD", "pw-123")
    s = Settings(_env_file=None)
    assert "s3cret-key" not in repr(s) and "pw-123" not in str(s.model_dump())
    assert s.signing_key.get_secret_value() == "s3cret-key"


def test_to_env_rebuilds_the_same_settings(settings: Settings,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    custom = settings.model_copy(update={"repos": {"demo": "/x"}, "topic_prefix": "p"})
    for key, value in custom.to_env().items():
        monkeypatch.setenv(key, value)
    rebuilt = Settings(_env_file=None)
    assert rebuilt.repos == {"demo": "/x"} and rebuilt.topic_prefix == "p"
    assert rebuilt.signing_key.get_secret_value() == custom.signing_key.get_secret_value()


def test_unknown_topic_is_an_error(settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown topic"):
        settings.topic("nope")
