-- Published through a Liquid template file (templates/customer_event.json.liquid).
select id, full_name, email, balance, updated_at
from {{ ref('customers') }}
