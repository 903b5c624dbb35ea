"""Alerts about a run's outcome, configured in the kafka_sync output (see alerts/)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbt_kafka_sync.alerts.decide import RunFacts
from dbt_kafka_sync.config.alerts import AlertsConfig
from dbt_kafka_sync.dbt.profiles import find_profiles_file, kafka_target, load_profiles
from dbt_kafka_sync.dbt.project import load_dbt_project
from dbt_kafka_sync.errors import SyncError
from dbt_kafka_sync.runner.context import (
    RunOptions,
    RunReport,
)

if TYPE_CHECKING:
    from dbt_kafka_sync.alerts.delivery import Delivery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alerting:
    """The profile's alerts block and what its alerts name: the dbt project and the target."""

    config: AlertsConfig
    project: str
    target: str


def load_alerting(options: RunOptions) -> Alerting | None:
    """The chosen output's alerts, read first, so that what fails after is alerted about."""
    project_dir = options.project_dir.resolve()
    profiles_path = find_profiles_file(options.profiles_dir, project_dir)
    target_name, kafka = kafka_target(load_profiles(profiles_path), options.target, profiles_path)
    if kafka.alerts is None:
        return None
    try:
        project = load_dbt_project(project_dir).name
    except SyncError:  # load_context reports it; the alert still names the project
        project = project_dir.name
    return Alerting(kafka.alerts, project, target_name)


def send_run_alerts(
    alerting: Alerting | None, report: RunReport, error: str | None = None
) -> list[Delivery]:
    """Alert about the run's outcome (`error`: what stopped it); never raises."""
    from dbt_kafka_sync.alerts.dispatch import send_alerts

    if alerting is None:
        return []
    facts = RunFacts(
        alerting.project, alerting.target, report.run_id, report.results, error, report.previous
    )
    return send_alerts(alerting.config, facts)
