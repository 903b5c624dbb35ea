"""The dbt side: dbt_project.yml, manifest.json and profiles.yml (dbt's and kafka_sync's)."""
