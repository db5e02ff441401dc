{#- rename_table. A view over a single table is automatically updatable in
    Postgres: inserts, updates and deletes through it reach the table, and
    columns an insert leaves out take the table's defaults.
    Context: table, table_name, view, new_name, columns, key. -#}

{% block create_view %}
CREATE VIEW {{ view|ident }} AS SELECT * FROM {{ table|ident }};
{% endblock %}
{% block drop_view %}
DROP VIEW IF EXISTS {{ view|ident }};
{% endblock %}

{% block contract %}
DROP VIEW {{ view|ident }};
ALTER TABLE {{ table|ident }} RENAME TO {{ new_name|ident }};
{% endblock %}
{% block contract_back %}
ALTER TABLE {{ view|ident }} RENAME TO {{ table_name|ident }};
CREATE VIEW {{ view|ident }} AS SELECT * FROM {{ table|ident }};
{% endblock %}
