{#- rename_column, and the copying path of change_column_type (which extends
    this file). MySQL/MariaDB BEFORE triggers assign to NEW, one trigger per
    event: whichever column the writer set, the other is derived from it.
    The SET assigns left to right, so the old column is derived first, while
    NEW of the new column is still what the writer wrote. The new column has
    no default and stays nullable until the contract, which drops the old
    column and, in the same ALTER, gives the new one the old one's NOT NULL
    and default. Conversions are MySQL's own on assignment (CAST to most
    column types does not exist in MySQL), or `forward`/`reverse`.
    Context: table, table_name, old, new, new_type, cast, forward, reverse,
    old_default, old_required, sync, trigger_insert, trigger_update,
    old_definition, new_definition {type, charset, collation, default},
    new_not_null, instant_ddl; carried_index, carried_foreign_key (one set
    per render, none otherwise); drop_indexes, drop_foreign_keys,
    drop_checks (the old column's, dropped with it at the contract). -#}

{% macro old_to_new(prefix) -%}
{% if forward and prefix %}(SELECT {{ forward|sql }} FROM (SELECT {{ prefix|sql }}{{ old|ident }} AS {{ old|ident }}) AS phasegate_row)
{%- elif forward %}({{ forward|sql }})
{%- else %}{{ prefix|sql }}{{ old|ident }}{% endif %}
{%- endmacro %}
{#- A column with its prefix ("NEW.", "OLD." or ""). -#}
{% macro col(prefix, name) -%}
{{ prefix|sql }}{{ name|ident }}
{%- endmacro %}
{#- A value of the new column as compared: a text column's collation ignores
    case and trailing spaces by default (utf8mb4_general_ci), so a write of
    'Bob' over 'bob' would look like no write: its utf8mb4 bytes
    (compare_as_text, src/plan/recipes/carry/equality.rs). -#}
{% macro exact(x) -%}
{% if compare_as_text %}CAST(CONVERT({{ x }} USING utf8mb4) AS BINARY){% else %}{{ x }}{% endif %}
{%- endmacro %}
{% macro new_to_old(prefix) -%}
{% if reverse %}(SELECT {{ reverse|sql }} FROM (SELECT {{ prefix|sql }}{{ new|ident }} AS {{ new|ident }}) AS phasegate_row)
{%- else %}{{ prefix|sql }}{{ new|ident }}{% endif %}
{%- endmacro %}
{#- What a MODIFY must restate after NULL / NOT NULL and DEFAULT, or lose. -#}
{% macro extras(d) -%}
{%- if d.on_update %} ON UPDATE {{ d.on_update|sql }}{% endif %}{%- if d.comment %} COMMENT {{ d.comment|literal }}{% endif %}
{%- endmacro %}
{% macro def(d) -%}
{{ d.type|sql }}{% if d.charset %} CHARACTER SET {{ d.charset|ident }}{% endif %}
{%- if d.collation %} COLLATE {{ d.collation|ident }}{% endif %}
{%- if d.invisible %} INVISIBLE{% endif %}
{%- endmacro %}

{% block add_column %}
ALTER TABLE {{ table|ident }} ADD COLUMN /*M! IF NOT EXISTS */ {{ new|ident }} {{ def(new_definition) }} NULL
{%- if instant_ddl %}, ALGORITHM=INSTANT{% else %}, ALGORITHM=INPLACE, LOCK=NONE{% endif %};
{% endblock %}

{% block drop_new_column %}
ALTER TABLE {{ table|ident }} DROP COLUMN /*M! IF EXISTS */ {{ new|ident }};
{% endblock %}

{#- The update trigger mirrors a write of the new column back to the old one,
    unless it is the backfill's (its session sets @phasegate_backfill), which
    copies what the old column already holds and must not rewrite it. It tests
    that mark first, in a compound body, and then does nothing at all: MySQL
    triggers have no WHEN, and the two assignments to NEW made the backfill's
    UPDATE half again as slow (measured on MariaDB 10.11, 1,000,000 rows:
    1.7× a plain UPDATE's time with them, 1.17× with the test first). Each
    CREATE TRIGGER follows a DROP TRIGGER IF EXISTS (every supported server
    accepts it): a run killed between the two triggers runs the step again. -#}
{% block sync_trigger %}
DROP TRIGGER IF EXISTS {{ trigger_insert|ident }};
CREATE TRIGGER {{ trigger_insert|ident }} BEFORE INSERT ON {{ table|ident }} FOR EACH ROW
  SET NEW.{{ old|ident }} = IF(NEW.{{ new|ident }} IS NULL, NEW.{{ old|ident }}, {{ new_to_old("NEW.") }}),
      NEW.{{ new|ident }} = IF(NEW.{{ new|ident }} IS NULL, {{ old_to_new("NEW.") }}, NEW.{{ new|ident }});
DROP TRIGGER IF EXISTS {{ trigger_update|ident }};
CREATE TRIGGER {{ trigger_update|ident }} BEFORE UPDATE ON {{ table|ident }} FOR EACH ROW
BEGIN
  IF NOT (@phasegate_backfill <=> 1) THEN
    SET NEW.{{ old|ident }} = IF({{ exact(col("NEW.", new)) }} <=> {{ exact(col("OLD.", new)) }} OR {{ exact(col("NEW.", new)) }} <=> {{ exact(old_to_new("NEW.")) }}, NEW.{{ old|ident }}, {{ new_to_old("NEW.") }}),
        NEW.{{ new|ident }} = IF({{ exact(col("NEW.", new)) }} <=> {{ exact(col("OLD.", new)) }}, {{ old_to_new("NEW.") }}, NEW.{{ new|ident }});
  END IF;
END;
{% endblock %}

{% block drop_sync_trigger %}
DROP TRIGGER IF EXISTS {{ trigger_insert|ident }};
DROP TRIGGER IF EXISTS {{ trigger_update|ident }};
{% endblock %}

{% block backfill_set %}{{ new|ident }} = {{ old_to_new("") }}{% endblock %}
{% block backfill_pending %}NOT ({{ exact(col("", new)) }} <=> {{ exact(old_to_new("")) }}){% endblock %}

{% block verify %}
SELECT count(*) FROM {{ table|ident }} WHERE NOT ({{ exact(col("", new)) }} <=> {{ exact(old_to_new("")) }})
{% endblock %}

{#- A copy of an index that uses the old column, built online. -#}
{% block carry_index %}
{% if carried_index %}
{% set ix = carried_index %}
ALTER TABLE {{ table|ident }}
  ADD {% if ix.unique %}UNIQUE {% endif %}INDEX /*M! IF NOT EXISTS */ {{ ix.name|ident }} (
{%- for k in ix.keys %}{% if not loop.first %}, {% endif %}{{ k.column|ident }}
{%- if k.prefix %}({{ k.prefix }}){% endif %}{% if k.descending %} DESC{% endif %}
{%- endfor %}), ALGORITHM=INPLACE, LOCK=NONE;
{% endif %}
{% endblock %}
{% block drop_carried_index %}
{% if carried_index %}
ALTER TABLE {{ table|ident }} DROP INDEX /*M! IF EXISTS */ {{ carried_index.name|ident }};
{% endif %}
{% endblock %}
{% block carry_unique %}{% endblock %}

{#- Privileges on the old column, granted on the new one before the switch. -#}
{% block carry_grants %}
{% for g in grants %}
GRANT {{ g.privilege|sql }} ({{ new|ident }}) ON {{ table|ident }} TO {{ g.user|literal }}@{{ g.host|literal }}{% if g.grantable %} WITH GRANT OPTION{% endif %};
{% endfor %}
{% endblock %}
{% block revoke_carried_grants %}
{% for g in grants %}
REVOKE {{ g.privilege|sql }} ({{ new|ident }}) ON {{ table|ident }} FROM {{ g.user|literal }}@{{ g.host|literal }};
{% endfor %}
{% endblock %}
{#- Not recreated on MySQL: adding a CHECK copies the table (a note says so). -#}
{% block carry_check %}{% endblock %}

{#- With foreign_key_checks off InnoDB adds the key in place, without the
    scan: the new column holds the verified copy of the old one's values,
    which the old key checks. New writes are checked once it exists. -#}
{% block carry_foreign_key %}
{% if carried_foreign_key %}
{% set fk = carried_foreign_key %}
SET SESSION foreign_key_checks = 0;
ALTER TABLE {{ table|ident }}
  ADD CONSTRAINT {{ fk.constraint|ident }} FOREIGN KEY /*M! IF NOT EXISTS */ ({{ fk.columns|idents }})
  REFERENCES {{ fk.parent|ident }} ({{ fk.parent_columns|idents }})
  ON DELETE {{ fk.on_delete|sql }} ON UPDATE {{ fk.on_update|sql }}, ALGORITHM=INPLACE, LOCK=NONE;
SET SESSION foreign_key_checks = 1;
{% endif %}
{% endblock %}
{% block validate_carried %}{% endblock %}
{% block drop_carried_constraint %}
{% if carried_foreign_key %}
ALTER TABLE {{ table|ident }} DROP FOREIGN KEY /*M! IF EXISTS */ {{ carried_foreign_key.constraint|ident }};
{% endif %}
{% endblock %}

{#- sync=app: new code stops writing the old column, which must accept NULL. -#}
{% block relax_old %}
{% if old_definition %}
ALTER TABLE {{ table|ident }}
  MODIFY {{ old|ident }} {{ def(old_definition) }} NULL{% if old_definition.default %} DEFAULT {{ old_definition.default|sql }}{% endif %}{{ extras(old_definition) }}, ALGORITHM=INPLACE, LOCK=NONE;
{% endif %}
{% endblock %}
{% block restore_old %}
{% if old_definition %}
ALTER TABLE {{ table|ident }}
  MODIFY {{ old|ident }} {{ def(old_definition) }} NOT NULL{% if old_definition.default %} DEFAULT {{ old_definition.default|sql }}{% endif %}{{ extras(old_definition) }}, ALGORITHM=INPLACE, LOCK=NONE;
{% endif %}
{% endblock %}

{#- The contract's statements commit one by one. Once the triggers are gone,
    the new release's inserts (which write only the new column) would fail
    on an old column that is NOT NULL without a default, until the ALTER
    that drops it commits: it accepts NULL first, while the triggers still
    fill it. -#}
{% block contract %}
{% if sync == "trigger" %}
{% if old_required and old_definition %}
ALTER TABLE {{ table|ident }}
  MODIFY {{ old|ident }} {{ def(old_definition) }} NULL{% if old_definition.default %} DEFAULT {{ old_definition.default|sql }}{% endif %}{{ extras(old_definition) }}, ALGORITHM=INPLACE, LOCK=NONE;
{% endif %}
DROP TRIGGER IF EXISTS {{ trigger_insert|ident }};
DROP TRIGGER IF EXISTS {{ trigger_update|ident }};
{% endif %}
ALTER TABLE {{ table|ident }}
{%- for fk in drop_foreign_keys %} DROP FOREIGN KEY /*M! IF EXISTS */ {{ fk|ident }},{% endfor %}
{%- for ix in drop_indexes %} DROP INDEX /*M! IF EXISTS */ {{ ix|ident }},{% endfor %}
{%- for check in drop_checks %} DROP CONSTRAINT /*M! IF EXISTS */ {{ check|ident }},{% endfor %} DROP COLUMN /*M! IF EXISTS */ {{ old|ident }}
{%- if new_not_null or new_definition.default or new_definition.on_update or new_definition.comment %},
  MODIFY {{ new|ident }} {{ def(new_definition) }}{% if new_not_null %} NOT NULL{% else %} NULL{% endif %}
{%- if new_definition.default %} DEFAULT {{ new_definition.default|sql }}{% endif %}{{ extras(new_definition) }}{% endif %};
{% endblock %}
