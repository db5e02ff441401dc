{#- drop_column. Context: table, column. -#}

{% block relax_not_null %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} DROP NOT NULL;
{% endblock %}

{% block drop_column %}
ALTER TABLE {{ table|ident }} DROP COLUMN {{ column|ident }};
{% endblock %}
