"""The sentiment model's drift figures and alerts in ``serving.ml_score_drift`` and ``serving.ml_alerts`` (V013).

A day's drift rows are replaced as a whole (a rerun after more reviews arrived gives the new figures); an alert is
raised once per kind, model version and day, and stays."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

import psycopg

DRIFT_ALERT = "score_drift"


@dataclass(frozen=True)
class DayDrift:
    """The drift of one model version's scores on one day."""

    day: date
    model_name: str
    model_version: str
    reviews: int
    psi: float | None
    psi_alert_threshold: float
    min_reviews: int
    bin_counts: dict[int, int]
    reference_shares: list[float] | None

    @property
    def alert(self) -> bool:
        """The PSI reached its threshold on a day with enough reviews to trust it."""
        return self.psi is not None and self.reviews >= self.min_reviews and self.psi >= self.psi_alert_threshold

    def message(self) -> str:
        """What the alert says."""
        return (
            f"{self.model_name} version {self.model_version}: the scores of {self.reviews} reviews on {self.day} "
            f"drifted from its training set's (PSI {self.psi:.3f} >= {self.psi_alert_threshold})"
        )


def record_drift(dsn: str, day: date, model_name: str, drifts: list[DayDrift]) -> int:
    """Replace the model's drift rows of ``day`` with ``drifts`` and raise the alerts they call for, in one
    transaction; the number of alerts newly raised."""
    raised = 0
    with psycopg.connect(dsn, connect_timeout=10, application_name="lakehouse-ml-drift") as conn:
        conn.execute("DELETE FROM serving.ml_score_drift WHERE model_name = %s AND day = %s", (model_name, day))
        for drift in drifts:
            conn.execute(
                "INSERT INTO serving.ml_score_drift (day, model_name, model_version, reviews, psi, "
                "psi_alert_threshold, min_reviews, alert, bin_counts, reference_shares) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    drift.day,
                    drift.model_name,
                    drift.model_version,
                    drift.reviews,
                    drift.psi,
                    drift.psi_alert_threshold,
                    drift.min_reviews,
                    drift.alert,
                    json.dumps({str(k): v for k, v in sorted(drift.bin_counts.items())}),
                    None if drift.reference_shares is None else json.dumps(drift.reference_shares),
                ),
            )
            if drift.alert:
                assert drift.psi is not None
                cursor = conn.execute(
                    "INSERT INTO serving.ml_alerts (kind, model_name, model_version, day, value, threshold, message) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (kind, model_name, model_version, day) DO NOTHING",
                    (
                        DRIFT_ALERT,
                        drift.model_name,
                        drift.model_version,
                        drift.day,
                        drift.psi,
                        drift.psi_alert_threshold,
                        drift.message(),
                    ),
                )
                raised += cursor.rowcount
    return raised
