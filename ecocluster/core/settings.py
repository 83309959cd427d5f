"""Runtime settings: environment (`ECOCLUSTER_*`) over the cluster file's `settings:` block
over defaults. Secrets are `SecretStr`: they print as `**********` and never reach logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["MqttTarget", "Settings", "load_settings"]


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """A broker address parsed from `mqtt://user:pass@host:port` (`mqtts://` for TLS)."""

    host: str
    port: int
    username: str | None
    password: SecretStr | None
    tls: bool

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


class Settings(BaseSettings):
    """Every knob of a node. Names are the contract of DESIGN.md; stages add their own."""

    model_config = SettingsConfigDict(
        env_prefix="ECOCLUSTER_", extra="forbid", validate_default=True, frozen=True
    )

    # connections
    mqtt_url: SecretStr = SecretStr("mqtt://127.0.0.1:1883")
    mqtt_client_id: str = "ecocluster-ingest"
    topic_prefix: str = Field(default="eco", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    influx_url: str | None = None
    influx_db: str = "ecocluster"
    influx_rp: str | None = None
    influx_token: SecretStr | None = None
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_create_db: bool = True
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path("data")

    # ingest
    ingest_batch_size: int = Field(default=5000, ge=1)
    ingest_flush_ms: int = Field(default=250, ge=1)
    max_payload_bytes: int = Field(default=64 * 1024, ge=64)
    max_future_s: float = Field(default=300.0, ge=0)
    max_age_s: float = Field(default=400 * 86400.0, gt=0)
    spool_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    dead_letter_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    #: MQTT protocol of the ingest subscriber: "5" for real brokers, "3.1.1" for amqtt.
    mqtt_protocol: Literal["3.1.1", "5"] = "5"
    mqtt_qos: Literal[0, 1] = 1
    mqtt_session_expiry_s: int = Field(default=86400, ge=0)
    mqtt_keepalive_s: int = Field(default=30, ge=5)
    #: Unacknowledged QoS 1 messages the broker may have in flight to us (v5 Receive
    #: Maximum); keep it ≤ the broker's `max_inflight_messages` (always so for 3.1.1).
    mqtt_receive_maximum: int = Field(default=1000, ge=2, le=65535)
    mqtt_ca_file: Path | None = None
    #: Subscribe only to these sites (empty: all); for partitioned scale-out.
    ingest_sites: list[str] = Field(default_factory=list)
    #: MQTT v5 shared subscription group (`$share/{group}/…`) for load-balanced ingest.
    ingest_share_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")

    # rules
    #: Seconds between evaluations of every rule (wall time).
    rules_tick_s: float = Field(default=10.0, gt=0)

    # logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("mqtt_url")
    @classmethod
    def _valid_mqtt_url(cls, value: SecretStr) -> SecretStr:
        _parse_mqtt_url(value.get_secret_value())
        return value

    @property
    def mqtt(self) -> MqttTarget:
        return _parse_mqtt_url(self.mqtt_url.get_secret_value())

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file's `settings:` block (passed as init kwargs).
        return env_settings, init_settings, file_secret_settings


def _parse_mqtt_url(url: str) -> MqttTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError("mqtt_url must look like mqtt://[user:pass@]host[:port] (or mqtts://)")
    if not parts.hostname:
        raise ValueError("mqtt_url has no host")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError("mqtt_url has an invalid port") from None
    password = SecretStr(unquote(parts.password)) if parts.password is not None else None
    username = unquote(parts.username) if parts.username else None
    return MqttTarget(parts.hostname, port, username, password, tls)


def load_settings(file_settings: dict[str, Any] | None = None) -> Settings:
    """Settings from the environment over `file_settings` (the cluster file's block).

    Raises `ValueError` naming each bad setting; the secret values are never echoed.
    """
    try:
        return Settings(**(file_settings or {}))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown setting"
            problems.append(f"setting {name!r} (env ECOCLUSTER_{name.upper()}): {msg}")
        raise ValueError("; ".join(problems)) from None
