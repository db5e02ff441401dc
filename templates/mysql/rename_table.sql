{#- rename_table. A view over one table is updatable in MySQL/MariaDB:
    inserts, updates and deletes through it reach the table, and columns an
    insert leaves out take the table's defaults. The contract swaps both
    names in one atomic RENAME TABLE, so the new name is never missing.
    Context: table, table_name, view, new_name, columns, key, parked_view. -#}

{% block create_view %}
CREATE OR REPLACE VIEW {{ view|ident }} AS SELECT * FROM {{ table|ident }};
{% endblock %}
{% block drop_view %}
DROP VIEW IF EXISTS {{ view|ident }};
{% endblock %}

{% block contract %}
RENAME TABLE {{ view|ident }} TO {{ parked_view|ident }}, {{ table|ident }} TO {{ view|ident }};
DROP VIEW IF EXISTS {{ parked_view|ident }};
{% endblock %}
{% block contract_back %}
RENAME TABLE {{ view|ident }} TO {{ table|ident }};
CREATE OR REPLACE VIEW {{ view|ident }} AS SELECT * FROM {{ table|ident }};
{% endblock %}
