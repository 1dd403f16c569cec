"""Settings from the environment (prefix ``TUNEFORGE_``), one object injected everywhere."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from search.datadir import DataDir


class Settings(BaseSettings):
    """Service settings. Every field reads ``TUNEFORGE_<NAME>`` from the environment."""

    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", frozen=True)

    data_dir: Path = Field(Path(".tuneforge"), description="Checkpoints, uploads, the DB.")
    database_url: str = Field("", description="Empty: sqlite:///<DATA_DIR>/tuneforge.db")
    ray_address: str = Field("", description="Empty: start a local Ray on loopback.")
    ray_num_cpus: int | None = Field(None, description="CPUs of the local Ray (default: all).")
    host: str = "127.0.0.1"
    port: int = 8000
    url: str = Field("http://127.0.0.1:8000", description="Where the CLI finds the server.")
    warm_workers: bool = Field(
        True, description="Start one trial-ready Ray worker per CPU before taking studies."
    )
    auth: bool = Field(
        True, description="Require API keys (false: anyone reaching the port is admin)."
    )
    api_key: str = Field("", description="The CLI's key (default: <DATA_DIR>/admin.key).")
    run_scheduler: bool = Field(True, description="Run the trial scheduler in this process.")
    scheduler_poll_s: float = Field(0.5, gt=0, description="How often it rereads the studies.")
    lease_s: float = Field(
        15.0,
        ge=1,
        le=3600,
        description="How long a scheduler holds a study without renewing it: when one dies, "
        "another takes its studies this long after its last renewal.",
    )
    scheduler_metrics_port: int = Field(
        9100,
        ge=0,
        le=65535,
        description="Port of a separate scheduler process's Prometheus /metrics (0: off).",
    )
    checkpoint_every: int = Field(
        5, ge=0, description="Epochs between a running trial's checkpoints (0: none)."
    )
    trial_retries: int = Field(
        3,
        ge=0,
        description="Times a trial cut short by a lost Ray worker or node, or by a restart of "
        "the service, is resumed from its last checkpoint before it fails.",
    )
    max_concurrent_requests: int = Field(
        32, ge=1, description="Requests handled at once; the others queue (no 503)."
    )
    quota_active_studies: int = Field(
        20,
        ge=1,
        le=1_000_000,
        description="A tenant's pending and running studies at once (429 above); an admin "
        "sets other values per tenant.",
    )
    quota_trials_in_flight: int = Field(
        64,
        ge=1,
        le=1_000_000,
        description="A tenant's trials in flight at once, over all its studies (a study's "
        "parallelism above it is refused with 403).",
    )
    quota_datasets: int = Field(
        100, ge=1, le=1_000_000, description="Datasets a tenant may keep (403 above)."
    )
    quota_stored_bytes: int = Field(
        10 * 2**30,
        ge=1,
        le=2**50,
        description="Bytes of uploads a tenant may keep, counted as uploaded (403 above).",
    )
    max_streams_per_key: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Event streams one API key may hold open at once, per API process.",
    )
    event_stream_max_s: float = Field(
        3600.0, gt=0, description="Longest an event stream stays open; clients reconnect."
    )
    max_request_bytes: int = Field(1_000_000, description="Largest request body accepted.")
    max_upload_bytes: int = Field(
        50_000_000, gt=0, description="Largest request body accepted by dataset uploads."
    )

    def quota_defaults(self) -> dict[str, int]:
        """Every tenant's limits where an admin set none (``service.store.quotas.Quota``)."""
        return {
            "active_studies": self.quota_active_studies,
            "trials_in_flight": self.quota_trials_in_flight,
            "datasets": self.quota_datasets,
            "stored_bytes": self.quota_stored_bytes,
        }

    @property
    def paths(self) -> DataDir:
        """Every path under the data directory."""
        return DataDir(self.data_dir)

    @property
    def db_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.paths.database.resolve()}"
