from __future__ import annotations

import pytest

from ecocluster.core.settings import load_settings


def test_defaults_and_contract_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MQTT_URL", "INFLUX_URL", "INFLUX_DB", "INFLUX_TOKEN", "API_PORT"):
        monkeypatch.delenv(f"ECOCLUSTER_{name}", raising=False)
    settings = load_settings()
    assert settings.influx_url is None  # → DuckDB under data_dir
    assert settings.mqtt.host == "127.0.0.1" and settings.mqtt.port == 1883


def test_environment_wins_over_file_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOCLUSTER_API_PORT", "9100")
    monkeypatch.setenv("ECOCLUSTER_INFLUX_URL", "http://127.0.0.1:8086")
    settings = load_settings({"api_port": 8000, "influx_db": "park"})
    assert settings.api_port == 9100
    assert settings.influx_url == "http://127.0.0.1:8086"
    assert settings.influx_db == "park"


def test_mqtt_url_is_parsed_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOCLUSTER_MQTT_URL", "mqtts://ingest:s3cr%40t@broker.local:8884")
    monkeypatch.setenv("ECOCLUSTER_INFLUX_TOKEN", "tok-123")
    settings = load_settings()
    target = settings.mqtt
    assert (target.host, target.port, target.username, target.tls) == (
        "broker.local",
        8884,
        "ingest",
        True,
    )
    assert target.password is not None and target.password.get_secret_value() == "s3cr@t"
    shown = repr(settings) + str(settings) + str(target) + settings.model_dump_json()
    assert "s3cr" not in shown and "tok-123" not in shown


def test_bad_settings_name_the_setting_without_echoing_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ECOCLUSTER_MQTT_URL", "http://user:hunter2@x")
    with pytest.raises(ValueError) as info:
        load_settings({"api_port": 70000, "colour": "red"})
    text = str(info.value)
    assert "'mqtt_url'" in text and "'api_port'" in text and "'colour'" in text
    assert "unknown setting" in text
    assert "hunter2" not in text


def test_fallback_broker_urls_inherit_the_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOCLUSTER_MQTT_URL", "mqtt://ingest:s3cret@node-1:1883")
    monkeypatch.setenv(
        "ECOCLUSTER_MQTT_FALLBACK_URLS", '["mqtt://node-2:1884", "mqtts://other:pw@node-3"]'
    )
    s = load_settings()
    second, third = s.mqtt_fallbacks
    assert (second.host, second.port, second.username) == ("node-2", 1884, "ingest")
    assert second.password is not None and second.password.get_secret_value() == "s3cret"
    assert (third.username, third.port, third.tls) == ("other", 8883, True)
    assert "s3cret" not in repr(s) and "pw@" not in repr(s)


def test_a_bad_fallback_url_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ECOCLUSTER_MQTT_FALLBACK_URLS", '["http://u:hunter2@node-2"]')
    with pytest.raises(ValueError, match="mqtt_fallback_urls") as caught:
        load_settings()
    assert "hunter2" not in str(caught.value)
