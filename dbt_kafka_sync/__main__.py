"""`python -m dbt_kafka_sync` runs the command line."""

from dbt_kafka_sync.cli import main

if __name__ == "__main__":  # not when a rendering process (spawn) imports it
    main()
