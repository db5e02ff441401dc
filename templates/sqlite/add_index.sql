{#- add_index. SQLite builds an index under the database write lock; an
    index's name is qualified by its schema, its table is not.
    Context: table, table_name, index, index_qualified, columns, unique, predicate. -#}

{% block create_index %}
CREATE {% if unique %}UNIQUE {% endif %}INDEX IF NOT EXISTS {{ index_qualified|ident }}
  ON {{ table_name|ident }} ({{ columns|idents }}){% if predicate %} WHERE {{ predicate|sql }}{% endif %};
{% endblock %}

{% block drop_index %}
DROP INDEX IF EXISTS {{ index_qualified|ident }};
{% endblock %}

{% block verify_unique %}
SELECT count(*) FROM (
  SELECT 1 FROM {{ table|ident }}
   WHERE {% for c in columns %}{% if not loop.first %} AND {% endif %}{{ c|ident }} IS NOT NULL{% endfor %}
{%- if predicate %} AND ({{ predicate|sql }}){% endif %}

   GROUP BY {{ columns|idents }}
  HAVING count(*) > 1
)
{% endblock %}
