{#- add_column. SQLite adds a column with a constant default only.
    Context: table, column, type, default, later_default (never set here), not_null, fill. -#}

{% block add_column %}
ALTER TABLE {{ table|ident }} ADD COLUMN {{ column|ident }} {{ type|sql }}
{%- if not_null %} NOT NULL{% endif %}
{%- if default %} DEFAULT {{ default|sql }}{% endif %};
{% endblock %}

{% block drop_column %}
ALTER TABLE {{ table|ident }} DROP COLUMN {{ column|ident }};
{% endblock %}

{% block set_default %}{% endblock %}
{% block drop_default %}{% endblock %}

{% block backfill_set %}{% if fill %}{{ column|ident }} = {{ fill|sql }}{% endif %}{% endblock %}
{% block backfill_pending %}{{ column|ident }} IS NULL{% endblock %}
