"""`python -m dbt_kafka_sync` runs the command line."""

from dbt_kafka_sync.cli import main

main()
