{#- An index on a partitioned table, built without blocking writes. Postgres
    refuses CREATE INDEX CONCURRENTLY on a partitioned table, so the index is
    created on the parent ONLY (catalog only, INVALID), built concurrently on
    each partition, and each partition's index attached to the parent's; the
    parent's becomes valid when every partition has one attached. A
    sub-partitioned partition gets the same: an index ON ONLY it, its
    partitions' indexes attached to that one, then that one attached above.
    Context: index (unique, method, keys [column, collation, opclass,
    descending, nulls_first], include, nulls_not_distinct, predicate), name,
    qualified (the index, schema-qualified), on (the table it indexes),
    attach_to (the index it is attached to). -#}

{% macro definition() -%}
{% if index.method %} USING {{ index.method|ident }}{% endif %} (
{%- for k in index.keys %}{% if not loop.first %}, {% endif %}{{ k.column|ident }}
{%- if k.collation %} COLLATE {{ k.collation|ident }}{% endif %}
{%- if k.opclass %} {{ k.opclass|ident }}{% endif %}
{%- if k.descending %} DESC{% if not k.nulls_first %} NULLS LAST{% endif %}{% elif k.nulls_first %} NULLS FIRST{% endif %}
{%- endfor %})
{%- if index.include %} INCLUDE ({{ index.include|idents }}){% endif %}
{%- if index.nulls_not_distinct %} NULLS NOT DISTINCT{% endif %}
{%- if index.predicate %} WHERE {{ index.predicate|sql }}{% endif %}
{%- endmacro %}

{#- The index of a partitioned table (or sub-partitioned partition), on it alone. -#}
{% block create_on_only %}
CREATE {% if index.unique %}UNIQUE {% endif %}INDEX IF NOT EXISTS {{ name|ident }}
  ON ONLY {{ on|ident }}{{ definition() }};
{% endblock %}

{#- Dropping a partitioned index drops the indexes attached to it. It cannot
    be done CONCURRENTLY. -#}
{% block drop_on_only %}
DROP INDEX IF EXISTS {{ qualified|ident }};
{% endblock %}

{#- One statement: CONCURRENTLY cannot run in a transaction block. -#}
{% block create_partition %}
CREATE {% if index.unique %}UNIQUE {% endif %}INDEX CONCURRENTLY IF NOT EXISTS {{ name|ident }}
  ON {{ on|ident }}{{ definition() }};
{% endblock %}

{% block drop_partition %}
DROP INDEX CONCURRENTLY IF EXISTS {{ qualified|ident }};
{% endblock %}

{#- Attaching one already attached does nothing. -#}
{% block attach %}
ALTER INDEX {{ attach_to|ident }} ATTACH PARTITION {{ qualified|ident }};
{% endblock %}

{#- The parent's index is valid once every partition's is attached. -#}
{% block verify_valid %}
SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass({{ qualified|ident|literal }}) AND indisvalid
{% endblock %}
