"""One settings object for every entry point (env prefix ``TTFB_``).

Precedence: explicit init arguments > environment > ``.env`` file > defaults.
Library code never reads ``os.environ``: ``main()`` builds a ``Settings`` once
and passes it down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STREAMS_TABLES = ("ttfb-decisions",)
# ``records``: every commit's test and every step of a search (``CommitTested``,
# ``BisectProgressed``), for the store and the dashboard; the folds never read
# it, so the worker's consumer is not handed one of them per commit
TOPICS = ("commands", "measurements", "detections", "records", "bisect", "alerts", "calibration",
          "deadletter")


class Settings(BaseSettings):
    """Configuration of the lab; empty bootstrap / URL mean the embedded parts."""

    model_config = SettingsConfigDict(
        env_prefix="TTFB_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    kafka_bootstrap: str = Field("", description="Kafka bootstrap servers; empty = embedded Tansu")
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    clickhouse_url: str = Field("", description="ClickHouse HTTP URL; empty = embedded chDB")
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "ttfb"
    clickhouse_kafka_ingest: bool = Field(
        False, description="cluster: ClickHouse reads the measurements topic itself (its "
        "Kafka engine and materialised views, made by producers.init) and the sink leaves "
        "runs, measurements and heartbeats to it; needs a ClickHouse server")
    clickhouse_kafka_broker: str = Field(
        "", description="the Kafka brokers as the ClickHouse server reaches them; empty: "
        "kafka_bootstrap")
    clickhouse_kafka_consumers: int = Field(
        1, ge=1, le=64, description="ClickHouse's consumers of the measurements topic (at "
        "most its partitions)")
    topic_prefix: str = "ttfb"
    partitions: int = Field(4, ge=1)
    data_dir: Path = Path(".ttfb")
    signing_key: SecretStr = SecretStr("ttfb-dev-signing-key-change-me")
    signing_key_previous: SecretStr = Field(
        SecretStr(""), description="while keys rotate: the key before signing_key, still "
        "accepted from commands that name it")
    embedded_lab: bool = Field(
        False, description="set by an embedded lab for its own processes: the bus is its "
        "loopback broker, and the development key may sign")
    command_max_age_s: float = Field(3600.0, gt=0)
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(8501, ge=1, le=65535)
    dashboard_url: str = ""
    dashboard_login: bool = Field(
        False, description="require a login (Streamlit's OIDC: an [auth] section in "
        ".streamlit/secrets.toml) before any page; for a shared deployment")
    dashboard_allowed: list[str] = Field(
        default_factory=list, description="with dashboard_login: the e-mail addresses, or "
        "@domains, that may see the dashboard (empty: anyone the provider logs in)")
    agent_id: str = "agent-local"
    agent_slots: int = Field(
        1, ge=1, le=64, description="runs at once, each on its own core (at most the "
        "cores but one); a scenario always runs in the same slot, so its series "
        "compare runs of one core")
    agent_heartbeat_s: float = Field(
        30.0, gt=0, le=3600, description="how often an agent says it is alive "
        "(AgentHeartbeat); the dashboard calls one silent after three of these")
    agent_class: str = Field(
        "", pattern=r"^[A-Za-z0-9_.-]{0,64}$", description="this agent's hardware class: the "
        "runs it takes and its series (default: cuda where a GPU is visible, else cpu)")
    agent_allowed_pythons: list[str] = Field(
        default_factory=list, description="interpreters an A/B arm (a command's arm.python) "
        "may name on this agent; none by default")
    agent_allowed_env: list[str] = Field(
        default_factory=list, description="environment keys an A/B arm (a command's arm.env) "
        "may set on this agent; none by default")
    agent_python: dict[str, str] = Field(
        default_factory=dict, description="this agent's interpreter per scenario name "
        "(or '*' for all), over the catalog's `python`: where the project's environment "
        "lives on this host")
    catalog: Path | None = None
    repos: dict[str, str] = Field(default_factory=dict,
                                  description="allowlisted repo name -> path/URL")
    log_level: str = "WARNING"
    group_session_timeout_s: float = Field(6.0, gt=0)
    sink_apart: bool = Field(
        False, description="streams: the worker leaves the store's writes to a sink process "
        "of its own (python -m streams.sink_service) and only folds; set by an embedded lab "
        "and the compose file")
    sink_batch_size: int = Field(2000, ge=1)
    sink_batch_seconds: float = Field(0.5, gt=0)
    decide_batch_size: int = Field(10_000, ge=1)  # events folded per changelog write, at most
    # how long a batch gathers behind a backlog, at most (with none, what came
    # within 20 ms is folded: streams.decisions.WINDOW_S); each scenario's
    # state is written once a batch, so a backlog's batches are large
    decide_batch_seconds: float = Field(1.0, gt=0)
    fetch_max_wait_ms: int = Field(50, ge=1, le=1500)  # a consumer fetch held this long at most
    max_event_bytes: int = Field(1_000_000, ge=1024)
    store_lock_timeout_s: float = Field(
        60.0, gt=0, description="how long a chDB call waits for the lock before it fails")
    sink_hold_s: float = Field(
        5.0, ge=0, le=10, description="the sink keeps its chDB session (and the store's lock) "
        "this long after opening it, for the batches that follow, unless another process "
        "waits for the lock; 0: a session a batch")
    rebuild_state: bool = Field(
        False, description="streams: fold the store's event log into the decision state on "
        "start (set by an embedded lab, whose broker forgets everything when it stops)")
    checkpoint_every_s: float = Field(
        3600.0, ge=0, description="streams, with rebuild_state: how often the decision state is "
        "checkpointed in the store, so that a start folds only the events after the newest "
        "checkpoint (each start writes one too; 0: only the starts)")
    checkpoint_lag_s: float = Field(
        300.0, ge=0, description="how far behind the newest event a checkpoint is taken (an "
        "event of its past stored later makes a start pass it over)")
    alert_webhooks: list[str] = Field(
        default_factory=list, description="URLs each alert and triage is POSTed to (the "
        "event's JSON, Standard Webhooks headers), with retries")
    webhook_secret: SecretStr = Field(
        SecretStr(""), description="signs alert_webhooks (Standard Webhooks: 'whsec_' + "
        "base64); empty: unsigned")
    slack_webhooks: list[str] = Field(
        default_factory=list, description="Slack incoming-webhook URLs each alert and triage "
        "is posted to")
    smtp_host: str = Field("", description="SMTP server for alert mail; empty: no mail")
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = Field(True, description="upgrade the SMTP connection with STARTTLS")
    mail_from: str = "ttfb-lab@localhost"
    mail_to: list[str] = Field(default_factory=list, description="recipients of alert mail")
    notify_attempts: int = Field(5, ge=1, le=100, description="tries per notification "
                                 "before it is dead-lettered")
    notify_backoff_s: float = Field(0.5, gt=0, description="first retry delay (doubles)")
    github_token: SecretStr = Field(
        SecretStr(""), description="`ttfb check`: a token that may write checks and "
        "pull-request comments (in Actions: the job's GITHUB_TOKEN)")
    github_api_url: str = Field("https://api.github.com", description="GitHub's REST API "
                                "(GitHub Enterprise: https://HOST/api/v3)")
    retention_days: float = Field(
        0.0, ge=0, description="raw runs and measurements of a commit expire this many days "
        "after its last run, kept as per-commit aggregates; detections, bisects, alerts and "
        "triage stay (0: keep everything)")
    metrics_host: str = Field("127.0.0.1", description="where services serve /metrics and "
                              "/health (0.0.0.0 in a container)")
    streams_metrics_port: int = Field(9464, ge=0, le=65535, description="a streams worker's "
                                      "/metrics and /health; 0: off")
    agent_metrics_port: int = Field(9465, ge=0, le=65535, description="an agent's /metrics and "
                                    "/health; 0: off")
    sink_metrics_port: int = Field(9466, ge=0, le=65535, description="the sink's /metrics and "
                                   "/health, with sink_apart; 0: off")
    api_host: str = "127.0.0.1"
    api_port: int = Field(8502, ge=1, le=65535, description="the JSON API's port")
    api_token: SecretStr = Field(
        SecretStr(""), description="bearer token the JSON API asks of triage requests; "
        "needed when the API listens beyond the loopback address")

    @field_validator("alert_webhooks", "slack_webhooks")
    @classmethod
    def _http_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"a webhook must be an http(s) URL, not {url[:40]!r}")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr) -> SecretStr:
        import base64
        import binascii

        text = value.get_secret_value()
        if text:
            try:
                body = text.removeprefix("whsec_")
                key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if len(key) < 24:
                raise ValueError("webhook_secret must be 'whsec_' followed by base64 of at "
                                 "least 24 random bytes (for example: python -c \"import "
                                 "base64,os; print('whsec_' + base64.b64encode(os.urandom(32))"
                                 ".decode())\")")
        return value

    @model_validator(mode="after")
    def _ingest_needs_a_server(self) -> Settings:
        if self.clickhouse_kafka_ingest and not self.clickhouse_url:
            raise ValueError("clickhouse_kafka_ingest needs a ClickHouse server "
                             "(TTFB_CLICKHOUSE_URL): the embedded store reads no topic")
        return self

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    def key_refusal(self) -> str:
        """Why a part of the lab must not start: a bus beyond this machine's
        embedded lab with the default or a short signing key; empty when it may."""
        from ttfb.signing import key_problem

        if self.embedded_bus or self.embedded_lab:
            return ""
        problem = key_problem(self.signing_key.get_secret_value())
        if not problem:
            return ""
        return (f"refusing to start on the bus {self.kafka_bootstrap}: {problem}, and "
                "anyone who can write to its commands topic could run code on every agent; "
                "set TTFB_SIGNING_KEY to the same long random key on every part of the lab "
                "(for example: openssl rand -hex 32)")

    @property
    def embedded_bus(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def embedded_store(self) -> bool:
        return not self.clickhouse_url

    def topic(self, name: str) -> str:
        """Full topic name for one of ``TOPICS``."""
        if name not in TOPICS:
            raise ValueError(f"unknown topic {name!r}; expected one of {TOPICS}")
        return f"{self.topic_prefix}.{name}"

    def all_topics(self) -> list[str]:
        return [self.topic(name) for name in TOPICS]

    @property
    def streams_app_id(self) -> str:
        return f"{self.topic_prefix}-streams"

    def agents_group(self, hardware_class: str) -> str:
        """The consumer group of a hardware class's agents on the commands topic."""
        return f"{self.topic_prefix}-agents-{hardware_class}"

    @property
    def sink_group(self) -> str:
        """The sink process's consumer group on every topic (``sink_apart``)."""
        return f"{self.topic_prefix}-sink"

    @property
    def clickhouse_group(self) -> str:
        """ClickHouse's consumer group on the measurements topic (its Kafka
        engine, with ``clickhouse_kafka_ingest``)."""
        return f"{self.topic_prefix}-clickhouse"

    def streams_internal_topics(self) -> list[tuple[str, int]]:
        """Faust's own topics (name, partitions): its leader topic and table changelogs.

        A memory-only broker forgets them on restart, and a worker rejoining
        without them stalls, so the bus set-up recreates them.
        """
        app = self.streams_app_id
        return [(f"{app}-__assignor-__leader", 1),
                *((f"{app}-{table}-changelog", self.partitions) for table in STREAMS_TABLES)]

    @property
    def chdb_path(self) -> Path:
        return self.data_dir / "chdb"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def workspace_dir(self) -> Path:
        return self.data_dir / "workspaces"

    def public_url(self) -> str:
        return self.dashboard_url or f"http://{self.dashboard_host}:{self.dashboard_port}"

    def to_env(self) -> dict[str, str]:
        """``TTFB_`` variables that rebuild these settings in a child process.

        Secrets are included because children need them; callers pass the
        result only to ``subprocess`` and never print it.
        """
        import json

        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, (dict, list)):
                text = json.dumps(value)
            else:
                text = str(value)
            env[f"TTFB_{name.upper()}"] = text
        return env
