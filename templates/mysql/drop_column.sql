{#- drop_column. Relaxing NOT NULL is a MODIFY that restates the column's
    definition (read from the live schema), rebuilt online.
    The column's own indexes, foreign keys and checks (live only) are
    dropped by name in the same ALTER.
    Context: table, column, definition {type, charset, collation, default},
    drop_indexes, drop_foreign_keys, drop_checks (live only). -#}

{% macro def(d) -%}
{{ d.type|sql }}{% if d.charset %} CHARACTER SET {{ d.charset|ident }}{% endif %}
{%- if d.collation %} COLLATE {{ d.collation|ident }}{% endif %}
{%- if d.invisible %} INVISIBLE{% endif %}
{%- endmacro %}
{% macro default(d) -%}
{% if d.default %} DEFAULT {{ d.default|sql }}{% endif %}
{%- if d.on_update %} ON UPDATE {{ d.on_update|sql }}{% endif %}{%- if d.comment %} COMMENT {{ d.comment|literal }}{% endif %}
{%- endmacro %}

{% block relax_not_null %}
{% if definition %}
ALTER TABLE {{ table|ident }}
  MODIFY {{ column|ident }} {{ def(definition) }} NULL{{ default(definition) }}, ALGORITHM=INPLACE, LOCK=NONE;
{% endif %}
{% endblock %}
{% block restore_not_null %}
{% if definition %}
ALTER TABLE {{ table|ident }}
  MODIFY {{ column|ident }} {{ def(definition) }} NOT NULL{{ default(definition) }}, ALGORITHM=INPLACE, LOCK=NONE;
{% endif %}
{% endblock %}

{% block drop_column %}
ALTER TABLE {{ table|ident }}
{%- for fk in drop_foreign_keys %} DROP FOREIGN KEY /*M! IF EXISTS */ {{ fk|ident }},{% endfor %}
{%- for ix in drop_indexes %} DROP INDEX /*M! IF EXISTS */ {{ ix|ident }},{% endfor %}
{%- for check in drop_checks %} DROP CONSTRAINT /*M! IF EXISTS */ {{ check|ident }},{% endfor %} DROP COLUMN /*M! IF EXISTS */ {{ column|ident }};
{% endblock %}

{#- Rolling back relax_not_null: rows written without the column hold NULL;
    `down` (when given) fills them, in batches, before NOT NULL is restored.
    Context: down. -#}
{% block count_pending %}
SELECT count(*) FROM {{ table|ident }} WHERE {{ column|ident }} IS NULL
{% endblock %}
{% block fill_set %}{% if down %}{{ column|ident }} = {{ down|sql }}{% endif %}{% endblock %}
{% block fill_pending %}{{ column|ident }} IS NULL{% endblock %}
