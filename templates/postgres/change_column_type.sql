{#- change_column_type. A rewriting change is a copy into a new column with
    casts both ways: the blocks of rename_column.sql, with `cast`, `forward`
    (old → new) and `reverse` (new → old) set. -#}
{#- Only the copy path (whose context has `old`) extends: the one-phase
    path's context has none of the copy blocks' names, and rendering them
    would fail. -#}
{% if old is defined %}{% extends "postgres/rename_column.sql" %}{% endif %}

{#- Binary-coercible changes (varchar widening, varchar → text, numeric
    precision increase at the same scale): the catalog changes, no row does.
    Context: table, column, new_type, old_type. -#}
{% block alter_type %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} TYPE {{ new_type|sql }};
{% endblock %}
{% block alter_type_back %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} TYPE {{ old_type|sql }};
{% endblock %}
