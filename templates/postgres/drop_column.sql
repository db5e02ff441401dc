{#- drop_column. Context: table, column, down. -#}

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

{#- Rolling back relax_not_null: rows written without the column hold NULL;
    `down` (when given) fills them, in batches, before NOT NULL is restored.
    Context: down. -#}
{% block count_pending %}
SELECT count(*) FROM {{ table|ident }} WHERE {{ column|ident }} IS NULL
{% endblock %}
{% block fill_set %}{% if down %}{{ column|ident }} = {{ down|sql }}{% endif %}{% endblock %}
{% block fill_pending %}{{ column|ident }} IS NULL{% endblock %}
