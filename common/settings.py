"""Easel's one settings model.

Every value comes from the environment (``EASEL_*``, plus the conventional ``REDIS_URL``) or from a ``.env`` file;
``.env.example`` lists them all. Each entry point loads :class:`Settings` once and passes it down. Values are
validated, never silently rewritten: a bad value fails at start-up with a message naming the variable.
"""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.limits import DEFAULT_LIMITS, Limits


class ConfigurationError(RuntimeError):
    """A setting is missing or wrong; the message names the variable and says what to change."""


class SettingMissing(ConfigurationError):
    """A setting an entry point needs is not set; the message names the variable and the flag."""


class Settings(BaseSettings):
    """Configuration shared by the CLI, the workers and (later) the bot."""

    model_config = SettingsConfigDict(
        env_prefix="EASEL_", env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # --- Redis / queue -------------------------------------------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "EASEL_REDIS_URL"),
        description="Redis-protocol server holding the queue, e.g. redis://127.0.0.1:6379/0.",
    )
    redis_prefix: str = Field(
        default="easel:",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="Prefix of every Easel key and queue name, so deployments or tests can share one server.",
    )
    redis_ca_file: str | None = Field(
        default=None, description="rediss:// only: CA certificate(s) (PEM) that signed the server's certificate; "
        "default: the system's trusted CAs. The server's host name is always checked against its certificate.",
    )
    redis_cert_file: str | None = Field(
        default=None, description="rediss:// only: client certificate (PEM), for a server that requires one.",
    )
    redis_key_file: str | None = Field(
        default=None, description="rediss:// only: the client certificate's private key (PEM).",
    )
    job_timeout_s: float = Field(default=900, gt=0, description="Longest a single task may run on a worker.")
    result_ttl_s: int = Field(default=7 * 24 * 3600, gt=0, description="How long task results stay in Redis.")
    events_maxlen: int = Field(default=100_000, ge=1000, description="Approximate length cap of the event stream.")
    events_max_age_s: float = Field(
        default=86_400, ge=60, description="Events older than this are trimmed from the stream."
    )
    redis_outage_s: float = Field(
        default=300, ge=0,
        description="How long workers, the bot and followers wait out a Redis outage before giving up.",
    )

    # --- Worker ---------------------------------------------------------------------------------------------
    webui_url: str | None = Field(default=None, description="Base URL of this worker's WebUI (started with --api).")
    webui_username: str | None = Field(default=None, description="User for a WebUI started with --api-auth.")
    webui_password: SecretStr | None = Field(default=None, description="Password for a WebUI with --api-auth.")
    worker_name: str = Field(
        default_factory=socket.gethostname,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="Name this worker registers under; unique per GPU.",
    )
    worker_poll_s: float = Field(
        default=0.5, gt=0, le=5, description="Fallback poll of an idle worker (new tasks wake it at once)."
    )
    webui_connect_timeout_s: float = Field(default=5.0, gt=0, description="Connect timeout for WebUI requests.")
    webui_read_timeout_s: float = Field(
        default=600.0, gt=0, description="Read timeout for WebUI requests (a generation answers when it is done)."
    )
    progress_interval_s: float = Field(default=0.5, gt=0, description="How often a worker polls WebUI progress.")
    stall_s: float = Field(
        default=120, gt=0,
        description="A generation whose progress does not move for this long is interrupted and handed back.",
    )
    heartbeat_s: float = Field(default=2.0, gt=0, description="How often a worker refreshes its registry entry.")
    worker_ttl_s: float = Field(default=10.0, gt=0, description="A worker silent for this long counts as gone.")
    max_tries: int = Field(
        default=3, ge=1, le=20, description="Tries of a task whose WebUI fails transiently (unreachable, 5xx)."
    )
    retry_backoff_s: float = Field(default=2.0, ge=0, description="Back-off before the first retry; doubles.")

    # --- Scheduling -------------------------------------------------------------------------------------------
    max_queued_per_user: int = Field(default=64, ge=1, description="Most tasks one user may have queued or running.")
    priority_classes: dict[str, float] = Field(
        default_factory=lambda: {"default": 0.0},
        description='Priority classes as JSON {"class": seconds of head start}, e.g. {"default": 0, "patron": 30}.',
    )
    aging_rate: float = Field(
        default=0.05, ge=0, le=1, description="How fast waiting makes up for a lower priority (virtual s per s)."
    )
    affinity: bool = Field(default=True, description="Prefer tasks for the checkpoint a worker has loaded.")
    max_pass_over_s: float = Field(
        default=60.0, gt=0, description="Longest a task may be passed over for another checkpoint's tasks."
    )
    lease_s: float = Field(default=5.0, ge=1, description="A running task's lease; its worker renews it.")
    worker_grace_s: float = Field(
        default=60.0, ge=0, description="On SIGTERM, how long the running task may finish before it is re-queued."
    )

    # --- Limits on requests ---------------------------------------------------------------------------------
    max_pixels: int = Field(
        default=DEFAULT_LIMITS.max_pixels, ge=64 * 64, description="Largest width x height of a generation."
    )
    max_hires_pixels: int = Field(
        default=DEFAULT_LIMITS.max_hires_pixels, ge=64 * 64, description="Largest size after hires fix."
    )
    max_steps: int = Field(default=DEFAULT_LIMITS.max_steps, ge=1, le=150, description="Most sampling steps per image.")
    max_batch: int = Field(default=DEFAULT_LIMITS.max_batch, ge=1, le=16, description="Most images per task.")
    max_prompt_length: int = Field(
        default=DEFAULT_LIMITS.max_prompt_length, ge=10, le=10_000, description="Longest prompt, in characters."
    )
    max_sweep_tasks: int = Field(
        default=DEFAULT_LIMITS.max_sweep_tasks, ge=1, le=1000, description="Most tasks one job may expand into."
    )
    max_upscale_scale: float = Field(
        default=DEFAULT_LIMITS.max_upscale_scale, gt=1, le=8, description="Largest upscale factor."
    )
    max_upscale_pixels: int = Field(
        default=DEFAULT_LIMITS.max_upscale_pixels, ge=64 * 64, description="Largest upscaled image."
    )
    max_image_bytes: int = Field(
        default=DEFAULT_LIMITS.max_image_bytes, ge=1024, description="Largest uploaded input image."
    )
    max_image_pixels: int = Field(
        default=DEFAULT_LIMITS.max_image_pixels, ge=64 * 64, description="Largest input image (pixels)."
    )

    log_level: str = Field(
        default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="Log level of workers and the bot."
    )

    # --- Discord bot ----------------------------------------------------------------------------------------
    discord_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DISCORD_TOKEN", "EASEL_DISCORD_TOKEN"),
        description="The bot's token (Discord developer portal > your application > Bot).",
    )
    discord_api_url: str = Field(
        default="https://discord.com/api/v10", description="Discord REST API base (a compatible server or a fake)."
    )
    discord_gateway_url: str = Field(default="wss://gateway.discord.gg/", description="Discord gateway URL.")
    discord_guild_ids: list[int] = Field(
        default_factory=list, description="Guilds to sync commands to at once (JSON list); empty: global sync."
    )
    discord_edit_interval_s: float = Field(
        default=3.0, ge=0, description="Least time between two edits of one job message (rate limits)."
    )
    discord_cooldown_s: float = Field(default=5.0, ge=0, description="Least time between two jobs of one user.")
    discord_banned_words: list[str] = Field(
        default_factory=list, description="Words refused in prompts (JSON list, case-insensitive)."
    )
    discord_role_priority: dict[str, str] = Field(
        default_factory=dict, description='Discord role id -> priority class (JSON), e.g. {"1234": "patron"}.'
    )

    # --- Job store (on the host of a front end) --------------------------------------------------------------
    data_dir: str = Field(default="./easel-data", description="Folder of the job database and the image store.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL of the job database (default: SQLite in the data folder)."
    )
    retention_unkept_days: float = Field(
        default=30, ge=0, description="Images not kept are purged this many days after they were made."
    )
    retention_deleted_days: float = Field(
        default=1, ge=0, description="Deleted images are purged this many days after their deletion."
    )

    # --- CLI ------------------------------------------------------------------------------------------------
    output_dir: str = Field(default="./easel-output", description="Where `easel submit` and the demo write PNGs.")

    # --- web gallery -------------------------------------------------------------------------------------------
    web_url: str | None = Field(
        default=None,
        description="Public base URL of `easel web` (EASEL_WEB_URL); job messages link to <url>/jobs/<job id>.",
    )

    @field_validator("web_url")
    @classmethod
    def _web_url_is_http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"EASEL_WEB_URL must start with http:// or https://, got {value!r}")
        return value

    def job_page_url(self, job_id: str) -> str | None:
        """The web gallery's page of a job, when EASEL_WEB_URL is set."""
        return f"{self.web_url.rstrip('/')}/jobs/{job_id}" if self.web_url else None

    # --- Web gallery (easel web): the server, its logins and moderators --------------------------------------
    web_secret: SecretStr | None = Field(
        default=None, description="Key signing web sessions (32+ random characters); `easel web --local` makes one "
        "and keeps it in the data folder.",
    )
    web_host: str = Field(default="127.0.0.1", description="Address `easel web` listens on.")
    web_port: int = Field(default=8080, ge=0, le=65535, description="Port `easel web` listens on.")
    web_moderators: list[str] = Field(
        default_factory=list, description='Owners who may see and change any job (JSON list), e.g. ["discord:1234"].',
    )
    web_moderator_roles: list[int] = Field(
        default_factory=list, description="Discord role ids whose members are moderators in the web (JSON list; "
        "checked in EASEL_DISCORD_GUILD_IDS with the bot token).",
    )
    discord_client_id: str | None = Field(default=None, description="OAuth2 client id of the Discord application.")
    discord_client_secret: SecretStr | None = Field(
        default=None, description="OAuth2 client secret of the Discord application (developer portal > OAuth2).",
    )
    discord_oauth_url: str = Field(
        default="https://discord.com/oauth2/authorize", description="Discord's OAuth2 authorize page (or a fake).",
    )
    web_login_ttl_s: float = Field(default=600, gt=0, le=86_400, description="How long a one-time login link works.")
    web_session_days: float = Field(default=14, gt=0, description="How long a web login lasts.")

    # --- Worker gateway and node tokens (issue 11) ------------------------------------------------------------
    gateway_url: str | None = Field(
        default=None, description="A volunteer node's gateway, e.g. https://easel.example.org (instead of Redis).",
    )
    node_token: SecretStr | None = Field(
        default=None, description="The node's token from `easel workers invite NAME` (with EASEL_GATEWAY_URL).",
    )
    gateway_ca_file: str | None = Field(
        default=None, description="CA certificate(s) (PEM) the node trusts for the gateway; default: the system's.",
    )
    gateway_secret: SecretStr | None = Field(
        default=None, description="Gateway: key of the owner pseudonyms nodes see (set it, or they change on restart).",
    )
    gateway_max_image_bytes: int = Field(
        default=32 * 1024**2, ge=1024, description="Gateway: largest image a node may return.",
    )
    gateway_max_message_bytes: int = Field(
        default=256 * 1024**2, ge=1024**2, description="Gateway: largest message from a node (a whole result).",
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve Prometheus /metrics on this port (workers and the bot).",
    )

    # --- backends (issue 10) --------------------------------------------------------------------------------
    backend: Literal["a1111", "comfyui"] | None = Field(
        default=None, description="The worker's server kind: `a1111` or `comfyui`; unset = detected from the URL."
    )

    def limits(self) -> Limits:
        """The request bounds, as the models validate them."""
        return Limits(**{name: getattr(self, name) for name in Limits.model_fields})

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise SettingMissing("REDIS_URL is not set: export REDIS_URL=redis://host:6379/0 or pass --redis-url")
        return self.redis_url

    def require_webui_url(self) -> str:
        if not self.webui_url:
            raise SettingMissing(
                "EASEL_WEBUI_URL is not set: export EASEL_WEBUI_URL=http://127.0.0.1:7860 or pass --webui-url"
            )
        return self.webui_url.rstrip("/")

    def require_discord_token(self) -> str:
        if self.discord_token is None or not self.discord_token.get_secret_value():
            raise SettingMissing("DISCORD_TOKEN is not set: export DISCORD_TOKEN=<your bot token>")
        return self.discord_token.get_secret_value()

    def webui_auth(self) -> tuple[str, str] | None:
        if self.webui_username is None:
            return None
        password = self.webui_password.get_secret_value() if self.webui_password else ""
        return (self.webui_username, password)
