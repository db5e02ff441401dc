{#- add_check. MySQL/MariaDB have no NOT VALID: the ALTER validates every
    row in a table copy (writes wait; reads continue), after the verification
    found none failing. A CHECK passes when its expression is NULL.
    Context: table, table_name, constraint, check. -#}

{% block verify %}
SELECT count(*) FROM {{ table|ident }} WHERE NOT ({{ check|sql }})
{% endblock %}

{% block add_not_valid %}
ALTER TABLE {{ table|ident }}
  ADD CONSTRAINT /*M! IF NOT EXISTS */ {{ constraint|ident }} CHECK ({{ check|sql }}), ALGORITHM=COPY, LOCK=SHARED;
{% endblock %}

{% block drop_constraint %}
ALTER TABLE {{ table|ident }} DROP CONSTRAINT /*M! IF EXISTS */ {{ constraint|ident }};
{% endblock %}

{% block validate %}{% endblock %}
