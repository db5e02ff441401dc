{#- add_foreign_key, enforced by triggers: writes to the child must reference
    an existing parent row; deleting a parent row follows on_delete.
    Context: table, table_name, parent, parent_name, columns, parent_columns,
    pairs, on_delete, constraint, trigger_insert, trigger_update,
    trigger_parent, message, parent_message. -#}

{% macro references_missing(prefix) -%}
{% for c in columns %}{% if not loop.first %} AND {% endif %}{{ prefix|sql }}{{ c|ident }} IS NOT NULL{% endfor %}
 AND NOT EXISTS (SELECT 1 FROM {{ parent_name|ident }} WHERE {% for pair in pairs %}{% if not loop.first %} AND {% endif %}{{ pair[1]|ident }} = {{ prefix|sql }}{{ pair[0]|ident }}{% endfor %})
{%- endmacro %}
{% macro children_of_old() -%}
{% for pair in pairs %}{% if not loop.first %} AND {% endif %}{{ pair[0]|ident }} = OLD.{{ pair[1]|ident }}{% endfor %}
{%- endmacro %}

{% block verify_orphans %}
SELECT count(*) FROM {{ table|ident }} AS child
 WHERE {{ references_missing("child.") }}
{% endblock %}

{% block add_not_valid %}
CREATE TRIGGER {{ trigger_insert|ident }} BEFORE INSERT ON {{ table_name|ident }}
  WHEN {{ references_missing("NEW.") }}
BEGIN
  SELECT RAISE(ABORT, {{ message|literal }});
END;
CREATE TRIGGER {{ trigger_update|ident }} BEFORE UPDATE OF {{ columns|idents }} ON {{ table_name|ident }}
  WHEN {{ references_missing("NEW.") }}
BEGIN
  SELECT RAISE(ABORT, {{ message|literal }});
END;
{% if on_delete == "CASCADE" %}
CREATE TRIGGER {{ trigger_parent|ident }} AFTER DELETE ON {{ parent_name|ident }}
BEGIN
  DELETE FROM {{ table_name|ident }} WHERE {{ children_of_old() }};
END;
{% elif on_delete == "SET NULL" %}
CREATE TRIGGER {{ trigger_parent|ident }} AFTER DELETE ON {{ parent_name|ident }}
BEGIN
  UPDATE {{ table_name|ident }} SET {% for c in columns %}{% if not loop.first %}, {% endif %}{{ c|ident }} = NULL{% endfor %} WHERE {{ children_of_old() }};
END;
{% else %}
CREATE TRIGGER {{ trigger_parent|ident }} BEFORE DELETE ON {{ parent_name|ident }}
  WHEN EXISTS (SELECT 1 FROM {{ table_name|ident }} WHERE {{ children_of_old() }})
BEGIN
  SELECT RAISE(ABORT, {{ parent_message|literal }});
END;
{% endif %}
{% endblock %}

{% block drop_constraint %}
DROP TRIGGER IF EXISTS {{ trigger_insert|ident }};
DROP TRIGGER IF EXISTS {{ trigger_update|ident }};
DROP TRIGGER IF EXISTS {{ trigger_parent|ident }};
{% endblock %}

{% block validate %}{% endblock %}
