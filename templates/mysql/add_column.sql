{#- add_column. ALGORITHM=INSTANT (MySQL 8.0.12+, MariaDB 10.3.2+) changes
    only the data dictionary; the server refuses rather than copies when it
    cannot. Older servers rebuild in place with LOCK=NONE.
    Context: table, column, type, default (constant), later_default (set after
    the column exists), not_null, fill, instant_ddl. -#}

{% block add_column %}
ALTER TABLE {{ table|ident }} ADD COLUMN /*M! IF NOT EXISTS */ {{ column|ident }} {{ type|sql }}
{%- if not_null %} NOT NULL{% endif %}
{%- if default %} DEFAULT {{ default|sql }}{% endif %}
{%- if instant_ddl %}, ALGORITHM=INSTANT{% else %}, ALGORITHM=INPLACE, LOCK=NONE{% endif %};
{% endblock %}

{% block drop_column %}
ALTER TABLE {{ table|ident }} DROP COLUMN /*M! IF EXISTS */ {{ column|ident }};
{% endblock %}

{#- SET/DROP DEFAULT only changes the data dictionary. -#}
{% block set_default %}
{% if later_default %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} SET DEFAULT {{ later_default|sql }};
{% endif %}
{% endblock %}
{% block drop_default %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ column|ident }} DROP DEFAULT;
{% endblock %}

{% block backfill_set %}{% if fill %}{{ column|ident }} = {{ fill|sql }}{% endif %}{% endblock %}
{% block backfill_pending %}{{ column|ident }} IS NULL{% endblock %}

{#- A serial column: AUTO_INCREMENT cannot be added in place, so the table is
    copied (writes wait); existing rows are numbered by the copy. -#}
{% block add_serial %}
ALTER TABLE {{ table|ident }} ADD COLUMN /*M! IF NOT EXISTS */ {{ column|ident }} {{ type|sql }} NOT NULL AUTO_INCREMENT UNIQUE, ALGORITHM=COPY, LOCK=SHARED;
{% endblock %}
