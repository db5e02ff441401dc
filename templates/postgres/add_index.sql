{#- add_index. CONCURRENTLY builds without blocking writes and cannot run in
    a transaction block; a failed build leaves an INVALID index that must be
    dropped before retrying (IF NOT EXISTS would otherwise keep the invalid one).
    Context: table, table_name, index, index_qualified, columns, unique, predicate. -#}

{% block create_index %}
CREATE {% if unique %}UNIQUE {% endif %}INDEX CONCURRENTLY IF NOT EXISTS {{ index|ident }}
  ON {{ table|ident }} ({{ columns|idents }}){% if predicate %} WHERE {{ predicate|sql }}{% endif %};
{% endblock %}

{% block drop_index %}
DROP INDEX CONCURRENTLY IF EXISTS {{ index_qualified|ident }};
{% endblock %}

{#- NULLs never collide in a unique index, so rows with a NULL key are left out. -#}
{% block verify_unique %}
SELECT count(*) FROM (
  SELECT 1 FROM {{ table|ident }}
   WHERE {% for c in columns %}{% if not loop.first %} AND {% endif %}{{ c|ident }} IS NOT NULL{% endfor %}
{%- if predicate %} AND ({{ predicate|sql }}){% endif %}

   GROUP BY {{ columns|idents }}
  HAVING count(*) > 1
) AS duplicates
{% endblock %}
