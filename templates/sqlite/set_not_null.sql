{#- set_not_null (also the tail of a required add_column). SQLite cannot add
    NOT NULL to an existing column without rebuilding the table; triggers
    refuse NULL writes instead.
    Context: table, table_name, column, backfill, trigger_insert, trigger_update, message. -#}

{% block backfill_set %}{% if backfill %}{{ column|ident }} = {{ backfill|sql }}{% endif %}{% endblock %}
{% block backfill_pending %}{{ column|ident }} IS NULL{% endblock %}

{% block verify %}
SELECT count(*) FROM {{ table|ident }} WHERE {{ column|ident }} IS NULL
{% endblock %}

{% block add_check %}
CREATE TRIGGER {{ trigger_insert|ident }} BEFORE INSERT ON {{ table_name|ident }}
  WHEN NEW.{{ column|ident }} IS NULL
BEGIN
  SELECT RAISE(ABORT, {{ message|literal }});
END;
CREATE TRIGGER {{ trigger_update|ident }} BEFORE UPDATE OF {{ column|ident }} ON {{ table_name|ident }}
  WHEN NEW.{{ column|ident }} IS NULL
BEGIN
  SELECT RAISE(ABORT, {{ message|literal }});
END;
{% endblock %}
{% block drop_check %}
DROP TRIGGER IF EXISTS {{ trigger_insert|ident }};
DROP TRIGGER IF EXISTS {{ trigger_update|ident }};
{% endblock %}

{% block validate_check %}{% endblock %}
{% block set_not_null %}{% endblock %}
{% block drop_not_null %}{% endblock %}
