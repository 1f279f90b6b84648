"""Resources: where the exports are, and the warehouse they go into."""

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from engagement_box import settings


class ExportsResource(dg.ConfigurableResource):
    """The folder of raw exports: `<data_dir>/<source>/*.csv|*.parquet`."""

    data_dir: str

    @property
    def path(self) -> Path:
        return Path(self.data_dir)


class ModelSettings(dg.ConfigurableResource):
    """Settings of the customer value models (README "Settings" documents each one).

    as_of: observation end, inclusive (default: the day of the last completed order).
    calibration_end: last day of the calibration window, inclusive (default: as_of - holdout_days).
    """

    as_of: str | None = None
    time_unit: str = "D"
    calibration_end: str | None = None
    holdout_days: int = 182
    clv_horizon_months: int = 12
    monthly_discount_rate: float = 0.01
    margin: float = 1.0
    currency: str = "USD"
    # JSON map of currency -> rate into `currency`, e.g. '{"GBP": 1.27, "EUR": 1.08}'.
    fx_rates_json: str | None = None
    penalizer: float = 0.0

    @classmethod
    def from_env(cls) -> "ModelSettings":
        env = settings.env
        return cls(
            as_of=env("ENGAGEMENT_AS_OF"),
            time_unit=(env("ENGAGEMENT_TIME_UNIT", "D") or "D").upper()[:1],
            calibration_end=env("ENGAGEMENT_CALIBRATION_END"),
            holdout_days=int(env("ENGAGEMENT_HOLDOUT_DAYS", "182") or 182),
            clv_horizon_months=int(env("ENGAGEMENT_CLV_HORIZON_MONTHS", "12") or 12),
            monthly_discount_rate=float(env("ENGAGEMENT_MONTHLY_DISCOUNT_RATE", "0.01") or 0.01),
            margin=float(env("ENGAGEMENT_MARGIN", "1.0") or 1.0),
            currency=(env("ENGAGEMENT_CURRENCY", "USD") or "USD").upper(),
            fx_rates_json=env("ENGAGEMENT_FX_RATES"),
            penalizer=float(env("ENGAGEMENT_PENALIZER", "0") or 0),
        )


class Warehouse(DuckDBResource):
    """The DuckDB warehouse file.

    Unlike the stock `DuckDBResource`, the connection is closed even when the asset raises (a
    leaked connection would hold DuckDB's file lock), and a lock held by another process (another
    run, an analyst's read-write session) is waited for up to `lock_timeout_seconds`, then the
    step fails with DuckDB's message. Nothing is written in that case.
    """

    lock_timeout_seconds: float = 60.0
    # A run holds `<database>.run.lock` from its first step to its last, so two runs never
    # interleave their steps (one would read the other's half-built work tables). The second
    # run waits up to this long, then fails before writing anything. The kernel releases the
    # lock when a run dies, even by kill -9.
    run_lock_timeout_seconds: float = 1800.0
    _run_lock: int | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        path = f"{self.database}.run.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.run_lock_timeout_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise dg.Failure(
                        f"another run has held {path} for over "
                        f"{self.run_lock_timeout_seconds:.0f} s; nothing was written"
                    ) from None
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self._run_lock = fd

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._run_lock is not None:
            fcntl.flock(self._run_lock, fcntl.LOCK_UN)
            os.close(self._run_lock)
            self._run_lock = None

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        deadline = time.monotonic() + self.lock_timeout_seconds
        delay = 0.1
        while True:
            try:
                conn = duckdb.connect(self.database, config=dict(self.connection_config))
                break
            except duckdb.IOException:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        try:
            yield conn
        finally:
            conn.close()


class EngagementConfig(dg.ConfigurableResource):
    """Weights and values of the engagement metrics (defaults in README "Engagement metrics").

    Each field maps to `engagement_box.engagement.metrics.EngagementSettings`; JSON fields take a
    mapping, e.g. ENGAGEMENT_SOCIAL_POINTS='{"like": 1, "comment": 5, "share": 10}'.
    """

    social_points_json: str | None = None
    crv_discount_rate: float = 0.10
    crv_unknown_type2_share: float | None = None
    crv_retention_cost: float = 0.0
    crv_acquisition_saved_type1: float = 0.0
    crv_acquisition_saved_type2: float = 0.0
    civ_beta: float = 0.5
    civ_attribution_share: float = 1.0
    ckv_value_per_review: float = 1.0
    quadrant_clv_quantile: float = 0.5
    quadrant_crv_quantile: float = 0.5
    audience_dir: str | None = None

    @classmethod
    def from_env(cls) -> "EngagementConfig":
        env = settings.env
        unknown_share = env("ENGAGEMENT_CRV_UNKNOWN_TYPE2_SHARE")
        return cls(
            social_points_json=env("ENGAGEMENT_SOCIAL_POINTS"),
            crv_discount_rate=float(env("ENGAGEMENT_CRV_DISCOUNT_RATE", "0.10") or 0.10),
            crv_unknown_type2_share=float(unknown_share) if unknown_share else None,
            crv_retention_cost=float(env("ENGAGEMENT_CRV_RETENTION_COST", "0") or 0),
            crv_acquisition_saved_type1=float(env("ENGAGEMENT_CRV_ACQ_SAVED_TYPE1", "0") or 0),
            crv_acquisition_saved_type2=float(env("ENGAGEMENT_CRV_ACQ_SAVED_TYPE2", "0") or 0),
            civ_beta=float(env("ENGAGEMENT_CIV_BETA", "0.5") or 0.5),
            civ_attribution_share=float(env("ENGAGEMENT_CIV_ATTRIBUTION_SHARE", "1.0") or 1.0),
            ckv_value_per_review=float(env("ENGAGEMENT_CKV_VALUE_PER_REVIEW", "1.0") or 1.0),
            quadrant_clv_quantile=float(env("ENGAGEMENT_QUADRANT_CLV_QUANTILE", "0.5") or 0.5),
            quadrant_crv_quantile=float(env("ENGAGEMENT_QUADRANT_CRV_QUANTILE", "0.5") or 0.5),
            audience_dir=env("ENGAGEMENT_AUDIENCE_DIR"),
        )

    def to_settings(self):
        import json

        from engagement_box.engagement.metrics import DEFAULT_SOCIAL_POINTS, EngagementSettings

        points = dict(DEFAULT_SOCIAL_POINTS)
        if self.social_points_json:
            points.update({k: float(v) for k, v in json.loads(self.social_points_json).items()})
        return EngagementSettings(
            social_points=points,
            crv_discount_rate=self.crv_discount_rate,
            crv_unknown_type2_share=self.crv_unknown_type2_share,
            crv_retention_cost=self.crv_retention_cost,
            crv_acquisition_saved_type1=self.crv_acquisition_saved_type1,
            crv_acquisition_saved_type2=self.crv_acquisition_saved_type2,
            civ_beta=self.civ_beta,
            civ_attribution_share=self.civ_attribution_share,
            ckv_value_per_review=self.ckv_value_per_review,
            quadrant_clv_quantile=self.quadrant_clv_quantile,
            quadrant_crv_quantile=self.quadrant_crv_quantile,
        )

    @property
    def audience_path(self) -> Path:
        return Path(self.audience_dir) if self.audience_dir else settings.DEFAULT_AUDIENCE_DIR


class RetentionPolicy(dg.ConfigurableResource):
    """Which published versions stay queryable: the newest `keep_versions` that are younger
    than `keep_days` days; the current version always stays."""

    keep_versions: int = 30
    keep_days: int = 400

    @classmethod
    def from_env(cls) -> "RetentionPolicy":
        return cls(
            keep_versions=int(settings.env("ENGAGEMENT_KEEP_VERSIONS", "30") or 30),
            keep_days=int(settings.env("ENGAGEMENT_KEEP_DAYS", "400") or 400),
        )


def warehouse_resource(database: str | Path | None = None) -> Warehouse:
    """The DuckDB warehouse; its folder is created so a fresh checkout runs."""
    path = Path(database or settings.warehouse_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    return Warehouse(database=str(path))


def default_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "warehouse": warehouse_resource(),
        "exports": ExportsResource(data_dir=str(settings.data_dir())),
        "model_settings": ModelSettings.from_env(),
        "engagement_config": EngagementConfig.from_env(),
        "retention": RetentionPolicy.from_env(),
    }
