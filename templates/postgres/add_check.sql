{#- add_check. A CHECK passes when its expression is NULL, so the
    verification counts only rows where it is false.
    Context: table, table_name, constraint, check. -#}

{% block verify %}
SELECT count(*) FROM {{ table|ident }} WHERE NOT ({{ check|sql }})
{% endblock %}

{% block add_not_valid %}
ALTER TABLE {{ table|ident }}
  ADD CONSTRAINT {{ constraint|ident }} CHECK ({{ check|sql }}) NOT VALID;
{% endblock %}

{% block drop_constraint %}
ALTER TABLE {{ table|ident }} DROP CONSTRAINT IF EXISTS {{ constraint|ident }};
{% endblock %}

{% block validate %}
ALTER TABLE {{ table|ident }} VALIDATE CONSTRAINT {{ constraint|ident }};
{% endblock %}
