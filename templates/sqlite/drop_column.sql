{#- drop_column. SQLite cannot relax NOT NULL in place (relax_not_null is unused). Context: table, column. -#}

{% block relax_not_null %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} DROP NOT NULL;
{% endblock %}
{#- Undoes relax_not_null when the column is known to have been NOT NULL. -#}
{% block restore_not_null %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} SET NOT NULL;
{% endblock %}

{% block drop_column %}
ALTER TABLE {{ table|ident }} DROP COLUMN {{ column|ident }};
{% endblock %}
