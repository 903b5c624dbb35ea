"""PostgreSQL, read with ADBC: binary COPY streamed as Arrow batches into the diff session.

The connection is the dbt profile's own Postgres output (the one `dbt run` used). Each
column is read in a form whose meaning survives the trip exactly; the DuckDB type it
takes in the session is chosen from the catalog, not guessed from the data:

- numeric(p, s) with p <= 38 becomes DECIMAL(p, s); a numeric without a precision (or a
  wider one) keeps its exact text and is sent as a JSON number with those digits;
- enums are read as their text, domains as their base type;
- json and jsonb are embedded as JSON, uuid as UUID, bytea as BLOB (base64 in JSON);
- one-dimensional arrays of the types above become lists.

Anything else (geometric types, money, ranges, time with time zone...) is refused before
any row is read, naming the column: a message is never silently wrong.
"""

from dbt_kafka_sync.sources.postgres.settings import PostgresSettings
from dbt_kafka_sync.sources.postgres.source import PostgresSource

__all__ = ["PostgresSettings", "PostgresSource"]
