{#- add_index. Built online: ALGORITHM=INPLACE, LOCK=NONE makes the server
    refuse (rather than silently lock or copy) if it cannot. No partial
    indexes in MySQL/MariaDB (the recipe refuses `where`).
    Context: table, table_name, index, index_qualified, columns, unique, predicate. -#}

{% block create_index %}
ALTER TABLE {{ table|ident }}
  ADD {% if unique %}UNIQUE {% endif %}INDEX /*M! IF NOT EXISTS */ {{ index|ident }} ({{ columns|idents }}), ALGORITHM=INPLACE, LOCK=NONE;
{% endblock %}

{% block drop_index %}
ALTER TABLE {{ table|ident }} DROP INDEX /*M! IF EXISTS */ {{ index|ident }}, ALGORITHM=INPLACE, LOCK=NONE;
{% endblock %}

{#- NULLs never collide in a unique index, so rows with a NULL key are left out. -#}
{% block verify_unique %}
SELECT count(*) FROM (
  SELECT 1 FROM {{ table|ident }}
   WHERE {% for c in columns %}{% if not loop.first %} AND {% endif %}{{ c|ident }} IS NOT NULL{% endfor %}

   GROUP BY {{ columns|idents }}
  HAVING count(*) > 1
) AS duplicates
{% endblock %}
