{#- change_column_type. A change that copies the table is a copy into a new
    column with conversions both ways: the blocks of rename_column.sql, with
    `cast`, `forward` (old → new) and `reverse` (new → old) set. -#}
{#- Only the copy path (whose context has `old`) extends. -#}
{% if old is defined %}{% extends "mysql/rename_column.sql" %}{% endif %}

{#- A VARCHAR widened within the same length prefix (≤255 bytes, or >255
    bytes both before and after): in place, no table copy. MODIFY restates
    the definition. Rolling back narrows, which is a table copy.
    Context: table, column, new_type, old_type, new_definition, old_definition, not_null. -#}
{% macro def(d) -%}
{{ d.type|sql }}{% if d.charset %} CHARACTER SET {{ d.charset|ident }}{% endif %}
{%- if d.collation %} COLLATE {{ d.collation|ident }}{% endif %}
{%- if d.invisible %} INVISIBLE{% endif %}
{%- if not_null %} NOT NULL{% else %} NULL{% endif %}
{%- if d.default %} DEFAULT {{ d.default|sql }}{% endif %}
{%- if d.on_update %} ON UPDATE {{ d.on_update|sql }}{% endif %}{%- if d.comment %} COMMENT {{ d.comment|literal }}{% endif %}
{%- endmacro %}
{% block alter_type %}
ALTER TABLE {{ table|ident }} MODIFY {{ column|ident }} {{ def(new_definition) }}, ALGORITHM=INPLACE, LOCK=NONE;
{% endblock %}
{% block alter_type_back %}
ALTER TABLE {{ table|ident }} MODIFY {{ column|ident }} {{ def(old_definition) }};
{% endblock %}
