select
    id,
    full_name,
    email,
    country,
    balance,
    signed_up_on,
    updated_at
from {{ ref('raw_customers') }}
