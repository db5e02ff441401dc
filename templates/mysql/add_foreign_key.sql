{#- add_foreign_key. MySQL/MariaDB have no NOT VALID: with
    foreign_key_checks = 0 the key is added in place (ALGORITHM=INPLACE,
    LOCK=NONE) without scanning existing rows, which the orphan verification
    checked first. InnoDB needs an index leading with the columns: unless the
    live schema shows one, the step adds it (named like the key) so that a
    rollback can drop it again.
    Context: add_index, table, table_name, parent, parent_name, columns, parent_columns,
    pairs ([column, parent column]), on_delete, constraint, message. -#}

{% block verify_orphans %}
SELECT count(*) FROM {{ table|ident }} AS child
 WHERE {% for c in columns %}{% if not loop.first %} AND {% endif %}child.{{ c|ident }} IS NOT NULL{% endfor %}

   AND NOT EXISTS (
     SELECT 1 FROM {{ parent|ident }} AS parent
      WHERE {% for pair in pairs %}{% if not loop.first %} AND {% endif %}parent.{{ pair[1]|ident }} = child.{{ pair[0]|ident }}{% endfor %}

   )
{% endblock %}

{% block add_not_valid %}
SET SESSION foreign_key_checks = 0;
ALTER TABLE {{ table|ident }}
{% if add_index %}
  ADD INDEX /*M! IF NOT EXISTS */ {{ constraint|ident }} ({{ columns|idents }}),
{% endif %}
  ADD CONSTRAINT {{ constraint|ident }} FOREIGN KEY /*M! IF NOT EXISTS */ ({{ columns|idents }})
  REFERENCES {{ parent|ident }} ({{ parent_columns|idents }})
{%- if on_delete %} ON DELETE {{ on_delete|sql }}{% endif %}, ALGORITHM=INPLACE, LOCK=NONE;
SET SESSION foreign_key_checks = 1;
{% endblock %}

{% block drop_constraint %}
ALTER TABLE {{ table|ident }} DROP FOREIGN KEY /*M! IF EXISTS */ {{ constraint|ident }}
{%- if add_index %}, DROP INDEX /*M! IF EXISTS */ {{ constraint|ident }}{% endif %};
{% endblock %}

{% block validate %}{% endblock %}
