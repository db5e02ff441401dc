{#- add_column. Context: table, column, type, default (stored in the catalog),
    later_default (volatile: set after the column exists), not_null,
    fill (the value existing rows get), sequence (serial types). -#}

{% block add_column %}
ALTER TABLE {{ table|ident }} ADD COLUMN {{ column|ident }} {{ type|sql }}
{%- if not_null %} NOT NULL{% endif %}
{%- if default %} DEFAULT {{ default|sql }}{% endif %};
{% endblock %}

{% block drop_column %}
ALTER TABLE {{ table|ident }} DROP COLUMN IF EXISTS {{ column|ident }};
{% endblock %}

{% block set_default %}
{% if sequence %}
ALTER SEQUENCE {{ sequence|ident }} OWNED BY {{ table|ident }}.{{ column|ident }};
{% endif %}
{% if later_default %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} SET DEFAULT {{ later_default|sql }};
{% endif %}
{% endblock %}
{% block drop_default %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} DROP DEFAULT;
{% if sequence %}
ALTER SEQUENCE {{ sequence|ident }} OWNED BY NONE;
{% endif %}
{% endblock %}

{% block backfill_set %}{% if fill %}{{ column|ident }} = {{ fill|sql }}{% endif %}{% endblock %}
{% block backfill_pending %}{{ column|ident }} IS NULL{% endblock %}

{#- Serial types: the sequence is created first, owned by the column once
    its default is set. Context: sequence, type (the integer type). -#}
{% block create_sequence %}
{% if sequence %}
CREATE SEQUENCE {{ sequence|ident }} AS {{ type|sql }};
{% endif %}
{% endblock %}
{% block drop_sequence %}
{% if sequence %}
DROP SEQUENCE IF EXISTS {{ sequence|ident }};
{% endif %}
{% endblock %}
