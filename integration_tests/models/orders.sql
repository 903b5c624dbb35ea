select
    customer_id,
    order_number,
    amount,
    status,
    ordered_at
from {{ ref('raw_orders') }}
