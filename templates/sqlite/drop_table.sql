{#- drop_table. Context: table. No CASCADE: a foreign key that still
    references the table stops the drop instead of silently going with it. -#}

{% block drop_table %}
DROP TABLE {{ table|ident }};
{% endblock %}
