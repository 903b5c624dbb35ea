{#
  series(n): a relation of n rows with one column `range` = 0 .. n-1, on either engine.
    select range as id from {{ series(12) }}
#}
{% macro series(n) -%}
  {%- if target.type == 'postgres' -%}
    generate_series(0, {{ n - 1 }}) as series(range)
  {%- else -%}
    range({{ n }}) as series(range)
  {%- endif -%}
{%- endmacro %}
