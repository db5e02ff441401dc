{#- set_not_null (also the tail of a required add_column). MODIFY restates
    the column's whole definition with NOT NULL, online (ALGORITHM=INPLACE,
    LOCK=NONE: the table is rebuilt in place while reads and writes go on);
    it fails if a NULL is left, which the verification checked first.
    Context: table, table_name, column, backfill, definition {type, charset,
    collation, default}. -#}

{% macro def(d) -%}
{{ d.type|sql }}{% if d.charset %} CHARACTER SET {{ d.charset|ident }}{% endif %}
{%- if d.collation %} COLLATE {{ d.collation|ident }}{% endif %}
{%- if d.invisible %} INVISIBLE{% endif %}
{%- endmacro %}
{% macro default(d) -%}
{% if d.default %} DEFAULT {{ d.default|sql }}{% endif %}
{%- if d.on_update %} ON UPDATE {{ d.on_update|sql }}{% endif %}{%- if d.comment %} COMMENT {{ d.comment|literal }}{% endif %}
{%- endmacro %}

{% block backfill_set %}{% if backfill %}{{ column|ident }} = {{ backfill|sql }}{% endif %}{% endblock %}
{% block backfill_pending %}{{ column|ident }} IS NULL{% endblock %}

{% block verify %}
SELECT count(*) FROM {{ table|ident }} WHERE {{ column|ident }} IS NULL
{% endblock %}

{% block add_check %}{% endblock %}
{% block drop_check %}{% endblock %}
{% block validate_check %}{% endblock %}

{% block set_not_null %}
ALTER TABLE {{ table|ident }}
  MODIFY {{ column|ident }} {{ def(definition) }} NOT NULL{{ default(definition) }}, ALGORITHM=INPLACE, LOCK=NONE;
{% endblock %}
{% block drop_not_null %}
ALTER TABLE {{ table|ident }}
  MODIFY {{ column|ident }} {{ def(definition) }} NULL{{ default(definition) }}, ALGORITHM=INPLACE, LOCK=NONE;
{% endblock %}
