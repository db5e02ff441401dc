{#- drop_table. Context: table. No CASCADE (MySQL ignores it anyway): a
    foreign key that still references the table stops the drop. -#}

{% block drop_table %}
DROP TABLE IF EXISTS {{ table|ident }};
{% endblock %}
