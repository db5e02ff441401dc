{#- change_column_type. A rewriting change is a copy into a new column with
    casts both ways: the blocks of rename_column.sql, with `cast`, `forward`
    (old → new) and `reverse` (new → old) set. -#}
{% extends "postgres/rename_column.sql" %}

{#- Binary-coercible changes (varchar widening, varchar → text, numeric
    precision increase at the same scale): the catalog changes, no row does.
    Context: table, column, new_type, old_type. -#}
{% block alter_type %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} TYPE {{ new_type|sql }};
{% endblock %}
{% block alter_type_back %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} TYPE {{ old_type|sql }};
{% endblock %}
