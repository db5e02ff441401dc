{#- rename_table. SQLite views are read-only; INSTEAD OF triggers write
    through to the table when its columns and primary key are known.
    Context: table, table_name, view, new_name, columns, defaults (each
    column's default expression or none), key, trigger_insert,
    trigger_update, trigger_delete.
    An INSTEAD OF INSERT trigger sees NULL for a column the INSERT left out,
    so a column with a default takes it when NEW has NULL (an explicit NULL
    written through the view into such a column gets the default too). -#}

{% macro key_match(prefix) -%}
{% for k in key %}{% if not loop.first %} AND {% endif %}{{ k|ident }} = {{ prefix|sql }}{{ k|ident }}{% endfor %}
{%- endmacro %}

{% macro create_view_sql() -%}
CREATE VIEW {{ view|ident }} AS SELECT * FROM {{ table_name|ident }};
{% if columns and key %}
CREATE TRIGGER {{ trigger_insert|ident }} INSTEAD OF INSERT ON {{ new_name|ident }}
BEGIN
  INSERT INTO {{ table_name|ident }} ({{ columns|idents }})
  VALUES ({% for c in columns %}{% if not loop.first %}, {% endif %}
{%- if defaults[loop.index0] %}coalesce(NEW.{{ c|ident }}, {{ defaults[loop.index0]|sql }})
{%- else %}NEW.{{ c|ident }}{% endif %}{% endfor %});
END;
CREATE TRIGGER {{ trigger_update|ident }} INSTEAD OF UPDATE ON {{ new_name|ident }}
BEGIN
  UPDATE {{ table_name|ident }}
     SET {% for c in columns %}{% if not loop.first %}, {% endif %}{{ c|ident }} = NEW.{{ c|ident }}{% endfor %}
   WHERE {{ key_match("OLD.") }};
END;
CREATE TRIGGER {{ trigger_delete|ident }} INSTEAD OF DELETE ON {{ new_name|ident }}
BEGIN
  DELETE FROM {{ table_name|ident }} WHERE {{ key_match("OLD.") }};
END;
{% endif %}
{%- endmacro %}

{% block create_view %}
{{ create_view_sql() }}
{% endblock %}
{% block drop_view %}
DROP VIEW IF EXISTS {{ view|ident }};
{% endblock %}

{% block contract %}
DROP VIEW {{ view|ident }};
ALTER TABLE {{ table|ident }} RENAME TO {{ new_name|ident }};
{% endblock %}
{% block contract_back %}
ALTER TABLE {{ view|ident }} RENAME TO {{ table_name|ident }};
{{ create_view_sql() }}
{% endblock %}
