-- The message is built in the warehouse by the package's json_payload macro.
select
    id,
    {{ dbt_kafka_sync.json_payload(['id', 'full_name', 'country']) }} as payload
from {{ ref('customers') }}
