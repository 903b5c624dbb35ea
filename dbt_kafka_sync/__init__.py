"""dbt-kafka-sync: turn dbt models into Kafka event streams."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dbt-kafka-sync")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
