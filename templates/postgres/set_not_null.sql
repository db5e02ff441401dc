{#- set_not_null (also the tail of a required add_column).
    Context: table, table_name, column, backfill, constraint, message. -#}

{% block backfill_set %}{% if backfill %}{{ column|ident }} = {{ backfill|sql }}{% endif %}{% endblock %}
{% block backfill_pending %}{{ column|ident }} IS NULL{% endblock %}

{% block verify %}
SELECT count(*) FROM {{ table|ident }} WHERE {{ column|ident }} IS NULL
{% endblock %}

{% block add_check %}
ALTER TABLE {{ table|ident }}
  ADD CONSTRAINT {{ constraint|ident }} CHECK ({{ column|ident }} IS NOT NULL) NOT VALID;
{% endblock %}
{% block drop_check %}
ALTER TABLE {{ table|ident }} DROP CONSTRAINT IF EXISTS {{ constraint|ident }};
{% endblock %}

{% block validate_check %}
ALTER TABLE {{ table|ident }} VALIDATE CONSTRAINT {{ constraint|ident }};
{% endblock %}

{% block set_not_null %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} SET NOT NULL;
ALTER TABLE {{ table|ident }} DROP CONSTRAINT {{ constraint|ident }};
{% endblock %}
{% block drop_not_null %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} DROP NOT NULL;
{% endblock %}
