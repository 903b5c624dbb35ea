-- Values that break naive JSON, synced four ways (a template twice: built by DuckDB, and
-- rendered by Liquid into the same topic); the same rows on DuckDB and PostgreSQL.
-- The sync config lives in config(meta=...) here: dbt evaluates it as a dict, so a Liquid
-- template inside a string literal is safe (in SQL comments and YAML, dbt would render
-- Liquid's double braces itself).
{{ config(meta={'kafka_sync': [
    {'name': 'as_columns', 'primary_key': 'id', 'key_column': 'id',
     'topic': var('kafka_topic_prefix', 'demo.') ~ 'tricky_columns'},
    {'name': 'as_column', 'primary_key': 'id', 'key_column': 'id',
     'topic': var('kafka_topic_prefix', 'demo.') ~ 'tricky_column',
     'message': {'column': 'payload'}},
    {'name': 'as_template', 'primary_key': 'id', 'key_column': 'id',
     'topic': var('kafka_topic_prefix', 'demo.') ~ 'tricky_template',
     'message': {'template': '{"id": {{ row.id }}, "text": "{{ row.text }}", "amount": {{ row.amount | json }}, "at": {{ row.happened_at | json }}, "tags": {{ row.tags | json }}}'}},
    {'name': 'as_built_template', 'primary_key': 'id', 'key_column': 'id',
     'topic': var('kafka_topic_prefix', 'demo.') ~ 'tricky_built_template',
     'message': {'template': '{"id": {{ row.id | json }}, "text": {{ row.text | json }}, "amount": {{ row.amount | json }}, "at": {{ row.happened_at | json }}}'}},
    {'name': 'as_rendered_template', 'primary_key': 'id', 'key_column': 'id',
     'topic': var('kafka_topic_prefix', 'demo.') ~ 'tricky_built_template',
     'message': {'compile': false, 'template': '{"id": {{ row.id | json }}, "text": {{ row.text | json }}, "amount": {{ row.amount | json }}, "at": {{ row.happened_at | json }}}'}},
]}) }}
select * from (values
{%- if target.type == 'postgres' %}
    (1, 'say "hi"', 12345678901234567890.123456789::decimal(38, 9),
     timestamptz '2024-01-02 03:04:05+02', array['a', 'b'], '{"ok": true}'),
    (2, 'back\slash' || chr(10) || 'new line', -0.000000001::decimal(38, 9),
     timestamptz '2024-06-30 23:59:59.5-07', array[]::text[], '[1, 2, 3]'),
    (3, 'emoji 😀 and ünïcødé', null, null, null, 'null'),
    (4, null, 0::decimal(38, 9), timestamptz '1999-12-31 23:59:59+00', array[null]::text[],
     '"just a string"')
{%- else %}
    (1, 'say "hi"', 12345678901234567890.123456789::decimal(38, 9),
     timestamptz '2024-01-02 03:04:05+02', ['a', 'b'], '{"ok": true}'),
    (2, 'back\slash' || chr(10) || 'new line', -0.000000001::decimal(38, 9),
     timestamptz '2024-06-30 23:59:59.5-07', [], '[1, 2, 3]'),
    (3, 'emoji 😀 and ünïcødé', null, null, null, 'null'),
    (4, null, 0::decimal(38, 9), timestamptz '1999-12-31 23:59:59+00', [null], '"just a string"')
{%- endif %}
) as t(id, text, amount, happened_at, tags, payload)
