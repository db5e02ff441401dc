{#- add_check, enforced by AFTER triggers that test the row as stored (the
    check names columns, not NEW.columns); RAISE(ABORT) undoes the statement.
    Context: table, table_name, constraint, check, trigger_insert, trigger_update, message. -#}

{% block verify %}
SELECT count(*) FROM {{ table|ident }} WHERE NOT ({{ check|sql }})
{% endblock %}

{% block add_not_valid %}
CREATE TRIGGER {{ trigger_insert|ident }} AFTER INSERT ON {{ table_name|ident }}
  WHEN (SELECT NOT ({{ check|sql }}) FROM {{ table_name|ident }} WHERE rowid = NEW.rowid)
BEGIN
  SELECT RAISE(ABORT, {{ message|literal }});
END;
CREATE TRIGGER {{ trigger_update|ident }} AFTER UPDATE ON {{ table_name|ident }}
  WHEN (SELECT NOT ({{ check|sql }}) FROM {{ table_name|ident }} WHERE rowid = NEW.rowid)
BEGIN
  SELECT RAISE(ABORT, {{ message|literal }});
END;
{% endblock %}

{% block drop_constraint %}
DROP TRIGGER IF EXISTS {{ trigger_insert|ident }};
DROP TRIGGER IF EXISTS {{ trigger_update|ident }};
{% endblock %}

{% block validate %}{% endblock %}
