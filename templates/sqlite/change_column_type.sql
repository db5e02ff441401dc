{#- change_column_type. A rewriting change is a copy into a new column with
    casts both ways: the blocks of rename_column.sql, with `cast`, `forward`
    (old → new) and `reverse` (new → old) set. -#}
{% extends "sqlite/rename_column.sql" %}

{#- SQLite cannot change a column's type in place: never binary coercible. -#}
{% block alter_type %}{% endblock %}
{% block alter_type_back %}{% endblock %}
