{#- add_foreign_key. MATCH SIMPLE: a row with any NULL key column references nothing.
    Context: table, table_name, parent, parent_name, columns, parent_columns,
    pairs ([column, parent column]), on_delete, constraint, message. -#}

{% block verify_orphans %}
SELECT count(*) FROM {{ table|ident }} AS child
 WHERE {% for c in columns %}{% if not loop.first %} AND {% endif %}child.{{ c|ident }} IS NOT NULL{% endfor %}

   AND NOT EXISTS (
     SELECT 1 FROM {{ parent|ident }} AS parent
      WHERE {% for pair in pairs %}{% if not loop.first %} AND {% endif %}parent.{{ pair[1]|ident }} = child.{{ pair[0]|ident }}{% endfor %}

   )
{% endblock %}

{% block add_not_valid %}
ALTER TABLE {{ table|ident }}
  ADD CONSTRAINT {{ constraint|ident }} FOREIGN KEY ({{ columns|idents }})
  REFERENCES {{ parent|ident }} ({{ parent_columns|idents }})
{%- if on_delete %} ON DELETE {{ on_delete|sql }}{% endif %} NOT VALID;
{% endblock %}

{% block drop_constraint %}
ALTER TABLE {{ table|ident }} DROP CONSTRAINT IF EXISTS {{ constraint|ident }};
{% endblock %}

{% block validate %}
ALTER TABLE {{ table|ident }} VALIDATE CONSTRAINT {{ constraint|ident }};
{% endblock %}
