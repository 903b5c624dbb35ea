-- Published through an inline template in schema.yml (wrapped in a raw block for dbt).
select customer_id, order_number, amount, status
from {{ ref('orders') }}
