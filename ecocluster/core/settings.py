"""Runtime settings: environment (`ECOCLUSTER_*`) over the cluster file's `settings:` block
over defaults. Secrets are `SecretStr`: they print as `**********` and never reach logs.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ecocluster.core.durations import Duration
from ecocluster.core.partition import parse_partition

__all__ = ["IncludePolicy", "MqttTarget", "Settings", "load_settings"]


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
        env_prefix="ECOCLUSTER_",
        extra="forbid",
        validate_default=True,
        frozen=True,
        hide_input_in_errors=True,  # a bad URL must not echo the password it holds
    )

    # connections
    mqtt_url: SecretStr = SecretStr("mqtt://127.0.0.1:1883")
    #: Further nodes of the same broker cluster, tried in turn when the current one cannot
    #: be reached (JSON list in the environment); without user:pass they log in as mqtt_url.
    mqtt_fallback_urls: list[SecretStr] = Field(default_factory=list, max_length=16)
    mqtt_client_id: str = "ecocluster-ingest"
    topic_prefix: str = Field(default="eco", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    influx_url: str | None = None
    influx_db: str = "ecocluster"
    influx_rp: str | None = None
    influx_token: SecretStr | None = None
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_create_db: bool = True
    #: Create/alter the retention policies at start (InfluxDB 1.x; false on 2.x/3.x, where
    #: retention is the bucket's or database's own: deploy/README.md, "InfluxDB").
    influx_manage_retention: bool = True
    #: How long raw readings, the 15-minute and the daily aggregates are kept (0s = forever).
    influx_retention_raw: Duration = timedelta(days=30)
    influx_retention_15m: Duration = timedelta(days=730)
    influx_retention_1d: Duration = timedelta(0)
    #: Retention policies (1.x) or DBRP mappings (2.x) the aggregates are written to.
    influx_rp_15m: str = Field(default="agg_15m", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    influx_rp_1d: str = Field(default="agg_1d", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: Downsample raw readings into the aggregates every so often (one node is enough).
    influx_downsample: bool = True
    influx_downsample_every_s: float = Field(default=300.0, ge=10)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    #: Origins allowed to call the API from a browser (CORS); empty = CORS off.
    api_cors_origins: list[str] = Field(default_factory=list)
    #: Per-token rate limit: sustained requests per second and burst (0 = no limit).
    api_rate_per_s: float = Field(default=50.0, ge=0)
    api_rate_burst: int = Field(default=200, ge=1)
    #: Live readings older than this are `stale` and left out of site power/flow sums.
    api_live_stale_s: float = Field(default=900.0, gt=0)
    #: Serve /metrics without a token (for a scraper on a private network).
    api_metrics_public: bool = False
    #: The public page and open data (`/public`, `/api/v1/public/*`, no token); false: 404.
    public_enabled: bool = True
    #: Licence of the open data (an SPDX id, its name, URL and the attribution to give).
    public_licence_id: str = Field(default="CC-BY-4.0", pattern=r"^[A-Za-z0-9.+-]{1,64}$")
    public_licence_name: str = "Creative Commons Attribution 4.0 International"
    public_licence_url: str | None = Field(
        default="https://creativecommons.org/licenses/by/4.0/", pattern=r"^https?://\S+$"
    )
    public_licence_attribution: str = "Eco-Cluster open data"
    #: How long public answers may be cached (Cache-Control max-age; server-side cache too).
    public_cache_max_age_s: int = Field(default=60, ge=0, le=86400)
    #: Public alerts shown: open ones, and those resolved in the last this many days.
    public_alert_days: int = Field(default=7, ge=1, le=90)
    data_dir: Path = Path("data")

    # ingest
    ingest_batch_size: int = Field(default=5000, ge=1)
    ingest_flush_ms: int = Field(default=250, ge=1)
    max_payload_bytes: int = Field(default=64 * 1024, ge=64)
    max_future_s: float = Field(default=300.0, ge=0)
    max_age_s: float = Field(default=400 * 86400.0, gt=0)
    spool_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    dead_letter_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    #: Readings without a time of their own (native without `ts`, SenML with relative
    #: times): "reject" dead-letters them (safe: no invented times); "receipt" stamps each
    #: message with its receipt time, distinct per meter, the same again on redelivery.
    ingest_missing_ts: Literal["reject", "receipt"] = "reject"
    #: MQTT protocol of the ingest subscriber: "5" for real brokers, "3.1.1" for amqtt.
    mqtt_protocol: Literal["3.1.1", "5"] = "5"
    mqtt_qos: Literal[0, 1] = 1
    mqtt_session_expiry_s: int = Field(default=86400, ge=0)
    mqtt_keepalive_s: int = Field(default=30, ge=5)
    #: Unacknowledged QoS 1 messages the broker may have in flight to us (v5 Receive
    #: Maximum); keep it ≤ the broker's `max_inflight_messages` (always so for 3.1.1).
    mqtt_receive_maximum: int = Field(default=1000, ge=2, le=65535)
    mqtt_ca_file: Path | None = None
    #: Client certificate and key for brokers that require one (`mqtts://` only).
    mqtt_cert_file: Path | None = None
    mqtt_key_file: Path | None = None
    #: Subscribe only to these sites (empty: all); for partitioned scale-out.
    ingest_sites: list[str] = Field(default_factory=list)
    #: MQTT v5 shared subscription group (`$share/{group}/…`) for load-balanced ingest.
    ingest_share_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: This worker's share of the sites (`--partition`): `k/n` (worker k of n, by a stable
    #: hash of the site id, ingest and rules) or `aggregate` (the one rules worker of the
    #: organisation/territory-scope rules); unset: every site, every rule.
    partition: str | None = None

    # rules
    #: Seconds between evaluations of every rule (wall time).
    rules_tick_s: float = Field(default=10.0, gt=0)

    # alerts
    #: SQLAlchemy URL of the alert database (`postgresql+psycopg://…` for shared workers);
    #: unset: SQLite (WAL) at `{data_dir}/alerts.sqlite`.
    alert_db_url: SecretStr | None = None
    #: HMAC key of the one-click ack links; unset: a random key kept in the alert database.
    alert_link_secret: SecretStr | None = None
    alert_link_ttl_s: float = Field(default=7 * 86400.0, gt=0)
    #: Where people reach the API from (ack links in messages point there).
    public_base_url: str = Field(default="http://127.0.0.1:8080", pattern=r"^https?://\S+$")
    #: At most this many notifications per contact per minute; the rest fold into a summary.
    alert_storm_limit: int = Field(default=10, ge=1)
    #: Sending attempts on one channel before failing over to the contact's next channel.
    alert_channel_attempts: int = Field(default=3, ge=1)
    alert_retry_base_s: float = Field(default=1.0, gt=0)
    alert_retry_max_s: float = Field(default=300.0, gt=0)
    #: A notification still undelivered after this long is given up (and audited as failed).
    alert_give_up_s: float = Field(default=86400.0, gt=0)
    alert_send_timeout_s: float = Field(default=30.0, gt=0)
    alert_dispatch_workers: int = Field(default=8, ge=1, le=64)
    #: This alert worker's name when several share one PostgreSQL (leases, logs, its MQTT
    #: client id `{mqtt_client_id}-alerts-{id}`); unset: the host name.
    alert_worker_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    #: A follower tries to take the timer lease, and the leader checks it still holds it,
    #: this often.
    alert_leader_poll_s: float = Field(default=1.0, gt=0, le=60)
    #: A leader not heard from for this long (paused, cut off) loses the lease: PostgreSQL
    #: ends its lock session (idle_session_timeout and TCP keepalives).
    alert_leader_timeout_s: float = Field(default=15.0, ge=2, le=600)
    #: MQTT 5 only: alert workers share `$share/{group}/{prefix}/_alerts/#` instead of each
    #: receiving every transition (unset, the default: each receives all; applying one twice
    #: is a no-op).
    alert_share_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    #: Inbound SMTP listener for e-mail replies ("ACK 4821"); unset: off.
    alert_smtp_port: int | None = Field(default=None, ge=0, le=65535)
    alert_smtp_host: str = "127.0.0.1"
    #: Folder of Jinja2 templates overriding the shipped ones (same file names).
    alert_templates_dir: Path | None = None
    #: Shared secrets of the SMS gateways' inbound webhooks (unset: not verified).
    alert_smseagle_apikey: SecretStr | None = None
    alert_smsgate_signing_key: SecretStr | None = None
    alert_httpsms_signing_key: SecretStr | None = None

    # logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("mqtt_fallback_urls")
    @classmethod
    def _valid_fallback_urls(cls, value: list[SecretStr]) -> list[SecretStr]:
        for url in value:
            _parse_mqtt_url(url.get_secret_value())
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _valid_mqtt_url(cls, value: SecretStr) -> SecretStr:
        _parse_mqtt_url(value.get_secret_value())
        return value

    @model_validator(mode="before")
    @classmethod
    def _influx_credentials_out_of_the_url(cls, data: Any) -> Any:
        # `http://user:pass@host` would print the password wherever the URL is shown (repr,
        # logs, errors): move the credentials to influx_username / influx_password (secret).
        if not isinstance(data, dict) or not isinstance(data.get("influx_url"), str):
            return data
        parts = urlsplit(data["influx_url"])
        if parts.username is None and parts.password is None:
            return data
        if data.get("influx_username") or data.get("influx_password"):
            raise ValueError(
                "influx_url holds credentials and influx_username/_password are set too:"
                " keep one of the two"
            )
        host = parts.netloc.rsplit("@", 1)[-1]
        return {
            **data,
            "influx_url": urlunsplit((parts.scheme, host, parts.path, parts.query, "")),
            "influx_username": unquote(parts.username or ""),
            "influx_password": unquote(parts.password or ""),
        }

    @field_validator("partition")
    @classmethod
    def _valid_partition(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() == "aggregate":
            return None if value is None else "aggregate"
        try:
            return str(parse_partition(value))  # normalised "k/n"
        except ValueError as exc:
            raise ValueError(f"{exc}; or 'aggregate' (the org/territory rules worker)") from None

    @model_validator(mode="after")
    def _share_group_needs_v5(self) -> Settings:
        # MQTT 3.1.1 has no shared subscriptions: a broker may grant `$share/…` as a plain
        # filter that never matches, and ingest would silently store nothing (issue 9 #13).
        if self.ingest_share_group and self.mqtt_protocol != "5":
            raise ValueError(
                "ingest_share_group needs MQTT 5 shared subscriptions: set"
                " ECOCLUSTER_MQTT_PROTOCOL=5 or drop the share group"
            )
        return self

    @property
    def mqtt(self) -> MqttTarget:
        return _parse_mqtt_url(self.mqtt_url.get_secret_value())

    @property
    def mqtt_fallbacks(self) -> tuple[MqttTarget, ...]:
        """The other nodes of the broker cluster, with mqtt_url's login where they have none."""
        main = self.mqtt
        out = []
        for url in self.mqtt_fallback_urls:
            target = _parse_mqtt_url(url.get_secret_value())
            if target.username is None:
                target = dataclasses.replace(target, username=main.username, password=main.password)
            out.append(target)
        return tuple(out)

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
            if not name:  # a check across settings (a model validator) names them itself
                problems.append(f"settings: {msg}")
                continue
            problems.append(f"setting {name!r} (env ECOCLUSTER_{name.upper()}): {msg}")
        raise ValueError("; ".join(problems)) from None


class IncludePolicy(BaseSettings):
    """Where a cluster file's `include:` may read from. Environment only
    (`ECOCLUSTER_CONFIG_INCLUDE_ANYWHERE=true`, `ECOCLUSTER_CONFIG_INCLUDE_DIRS=/etc/eco:/srv/eco`):
    a file cannot widen its own reach. By default only the cluster file's own directory."""

    model_config = SettingsConfigDict(env_prefix="ECOCLUSTER_CONFIG_", extra="ignore", frozen=True)

    include_anywhere: bool = False
    #: Extra directories (separated by `os.pathsep`) includes may read from.
    include_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    @field_validator("include_dirs", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part.strip()]
        return value
