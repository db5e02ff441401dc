{#- change_column_type. A rewriting change is a copy into a new column with
    casts both ways: the blocks of rename_column.sql, with `cast`, `forward`
    (old → new) and `reverse` (new → old) set. -#}
{#- Only the copy path (whose context has `old`) extends: the one-phase
    path's context has none of the copy blocks' names, and rendering them
    would fail. -#}
{% if old is defined %}{% extends "sqlite/rename_column.sql" %}{% endif %}

{#- SQLite cannot change a column's type in place: never binary coercible. -#}
{% block alter_type %}{% endblock %}
{% block alter_type_back %}{% endblock %}
