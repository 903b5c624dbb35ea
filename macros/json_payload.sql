{#
  json_payload(columns): a JSON object built in the warehouse from the given columns,
  for models that publish with `message: {column: payload}`.

    select id, {{ dbt_kafka_sync.json_payload(['id', 'email']) }} as payload from ...
#}
{% macro json_payload(columns) -%}
  {{ return(adapter.dispatch('json_payload', 'dbt_kafka_sync')(columns)) }}
{%- endmacro %}

{% macro default__json_payload(columns) -%}
  {{ exceptions.raise_compiler_error(
      "dbt_kafka_sync.json_payload is not implemented for the adapter '" ~ adapter.type() ~ "'"
  ) }}
{%- endmacro %}

{% macro duckdb__json_payload(columns) -%}
  json_object(
    {%- for column in columns %}
    '{{ column }}', {{ adapter.quote(column) }}{{ "," if not loop.last }}
    {%- endfor %}
  )::varchar
{%- endmacro %}

{# The same compact text as json_object on DuckDB: {"id":1,"name":"Ada"} #}
{% macro postgres__json_payload(columns) -%}
  concat(
    '{',
    {%- for column in columns %}
    {{ "','," if not loop.first }}to_json({{ dbt.string_literal(column) }}::text)::text, ':',
    coalesce(to_json({{ adapter.quote(column) }})::text, 'null'){{ "," if not loop.last }}
    {%- endfor %}
    , '}'
  )
{%- endmacro %}
