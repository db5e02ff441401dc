{#- rename_column, and the rewriting path of change_column_type (which extends
    this file): a new column kept equal to the old one while both exist.
    Context: table, table_name, old, new, new_type, cast, forward, reverse,
    old_default, move_default, old_required, sync, key, function, trigger,
    execute_procedure (Postgres before 11);
    for carrying the old column's objects to the new one (live schema only):
    carried_index, carried_unique, carried_check, carried_foreign_key,
    carried_constraint (one set per render, none otherwise), primary_key. -#}

{#- The new column's value computed from the old one (prefix: "NEW." in a trigger). -#}
{% macro old_to_new(prefix) -%}
{% if forward and prefix %}(SELECT {{ forward|sql }} FROM (SELECT {{ prefix|sql }}{{ old|ident }} AS {{ old|ident }}) AS phasegate_row)
{%- elif forward %}({{ forward|sql }})
{%- elif cast %}CAST({{ prefix|sql }}{{ old|ident }} AS {{ new_type|sql }})
{%- else %}{{ prefix|sql }}{{ old|ident }}{% endif %}
{%- endmacro %}
{#- The old column's value computed from the new one (assignment casts otherwise). -#}
{% macro new_to_old(prefix) -%}
{% if reverse %}(SELECT {{ reverse|sql }} FROM (SELECT {{ prefix|sql }}{{ new|ident }} AS {{ new|ident }}) AS phasegate_row)
{%- else %}{{ prefix|sql }}{{ new|ident }}{% endif %}
{%- endmacro %}

{% block add_column %}
{% if new_type %}
ALTER TABLE {{ table|ident }} ADD COLUMN {{ new|ident }} {{ new_type|sql }};
{% else %}
-- {{ new|ident }} gets the type of {{ old|ident }} as the catalog has it when this runs,
-- and its collation when it is not the type's own (COLLATE "C", a case-insensitive ICU one).
DO {{ dollar_quote }}
DECLARE
  column_type text;
BEGIN
  SELECT format_type(a.atttypid, a.atttypmod)
         || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                 THEN ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(co.collname)
                 ELSE '' END
    INTO column_type
    FROM pg_attribute a
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_collation co ON co.oid = a.attcollation
    LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
   WHERE a.attrelid = {{ table|ident|literal }}::regclass
     AND a.attname = {{ old|literal }}
     AND NOT a.attisdropped;
  IF column_type IS NULL THEN
    RAISE EXCEPTION 'column % of table % does not exist', {{ old|literal }}, {{ table|ident|literal }};
  END IF;
  EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', {{ table|ident|literal }}::regclass, {{ new|literal }}, column_type);
END
{{ dollar_quote }};
{% endif %}
{% endblock %}

{% block drop_new_column %}
ALTER TABLE {{ table|ident }} DROP COLUMN IF EXISTS {{ new|ident }};
{% endblock %}

{% block sync_trigger %}
CREATE OR REPLACE FUNCTION {{ function|ident }}() RETURNS trigger
LANGUAGE plpgsql AS {{ dollar_quote }}
BEGIN
  -- phasegate sync trigger: keeps {{ new|ident }} and {{ old|ident }} equal.
  IF TG_OP = 'INSERT' THEN
    -- A writer on the new release sets {{ new|ident }}; one on the old release does not.
    IF NEW.{{ new|ident }} IS NULL THEN
      NEW.{{ new|ident }} := {{ old_to_new("NEW.") }};
    ELSE
      NEW.{{ old|ident }} := {{ new_to_old("NEW.") }};
    END IF;
  -- A write of {{ new|ident }} (not the backfill, which writes the value {{ old|ident }} already implies)
  -- is mirrored back; anything else keeps {{ new|ident }} following {{ old|ident }}.
  ELSIF NEW.{{ new|ident }}{% if compare_as_text %}::text COLLATE "C"{% endif %} IS DISTINCT FROM OLD.{{ new|ident }}{% if compare_as_text %}::text COLLATE "C"{% endif %}
    AND NEW.{{ new|ident }}{% if compare_as_text %}::text COLLATE "C"{% endif %} IS DISTINCT FROM ({{ old_to_new("NEW.") }}){% if compare_as_text %}::text COLLATE "C"{% endif %} THEN
    NEW.{{ old|ident }} := {{ new_to_old("NEW.") }};
  ELSE
    NEW.{{ new|ident }} := {{ old_to_new("NEW.") }};
  END IF;
  RETURN NEW;
END
{{ dollar_quote }};
DROP TRIGGER IF EXISTS {{ trigger|ident }} ON {{ table|ident }};
-- Not for phasegate's backfill batches, which compute {{ new|ident }} themselves
-- (src/dialect/mod.rs: POSTGRES_BACKFILL_MARK).
CREATE TRIGGER {{ trigger|ident }}
  BEFORE INSERT OR UPDATE ON {{ table|ident }}
  FOR EACH ROW WHEN (current_setting('phasegate.backfill', true) IS DISTINCT FROM 'on') EXECUTE {% if execute_procedure %}PROCEDURE{% else %}FUNCTION{% endif %} {{ function|ident }}();
{% endblock %}

{% block drop_sync_trigger %}
DROP TRIGGER IF EXISTS {{ trigger|ident }} ON {{ table|ident }};
DROP FUNCTION IF EXISTS {{ function|ident }}();
{% endblock %}

{% block backfill_set %}{{ new|ident }} = {{ old_to_new("") }}{% endblock %}
{% block backfill_pending %}{{ new|ident }}{% if compare_as_text %}::text COLLATE "C"{% endif %} IS DISTINCT FROM ({{ old_to_new("") }}){% if compare_as_text %}::text COLLATE "C"{% endif %}{% endblock %}

{% block verify %}
SELECT count(*) FROM {{ table|ident }} WHERE {{ new|ident }}{% if compare_as_text %}::text COLLATE "C"{% endif %} IS DISTINCT FROM ({{ old_to_new("") }}){% if compare_as_text %}::text COLLATE "C"{% endif %}
{% endblock %}

{#- A type change's default, as the new column will hold it: fails (in the
    reversible deploy) when the new type does not take it. -#}
{% block verify_default %}
{% if old_default %}
SELECT count(*) FILTER (WHERE v IS DISTINCT FROM v) FROM (SELECT CAST(({{ old_default|sql }}) AS {{ new_type|sql }}) AS v) AS phasegate_default
{% endif %}
{% endblock %}

{#- Carrying what the old column has to the new one, after the backfill. -#}

{#- A copy of a plain index, for the new column. One statement: CONCURRENTLY
    cannot run in a transaction block. -#}
{% block carry_index %}
{% if carried_index %}
{% set ix = carried_index %}
CREATE {% if ix.unique %}UNIQUE {% endif %}INDEX CONCURRENTLY IF NOT EXISTS {{ ix.name|ident }}
  ON {{ table|ident }}{% if ix.method %} USING {{ ix.method|ident }}{% endif %} (
{%- for k in ix.keys %}{% if not loop.first %}, {% endif %}{{ k.column|ident }}
{%- if k.collation %} COLLATE {{ k.collation|ident }}{% endif %}
{%- if k.opclass %} {{ k.opclass|ident }}{% endif %}
{%- if k.descending %} DESC{% if not k.nulls_first %} NULLS LAST{% endif %}{% elif k.nulls_first %} NULLS FIRST{% endif %}
{%- endfor %})
{%- if ix.include %} INCLUDE ({{ ix.include|idents }}){% endif %}
{%- if ix.nulls_not_distinct %} NULLS NOT DISTINCT{% endif %};
{% endif %}
{% endblock %}
{% block drop_carried_index %}
{% if carried_index %}
DROP INDEX CONCURRENTLY IF EXISTS {{ carried_index.qualified|ident }};
{% endif %}
{% endblock %}

{#- The unique constraint, on the copy of its index: no scan. -#}
{% block carry_unique %}
{% if carried_unique %}
ALTER TABLE {{ table|ident }}
  ADD CONSTRAINT {{ carried_unique.constraint|ident }} UNIQUE USING INDEX {{ carried_unique.index|ident }}
{%- if carried_unique.deferrable %} DEFERRABLE{% if carried_unique.deferred %} INITIALLY DEFERRED{% endif %}{% endif %};
{% endif %}
{% endblock %}

{% block carry_check %}
{% if carried_check %}
ALTER TABLE {{ table|ident }}
  ADD CONSTRAINT {{ carried_check.constraint|ident }} CHECK ({{ carried_check.expression|sql }}) NOT VALID;
{% endif %}
{% endblock %}

{% block carry_foreign_key %}
{% if carried_foreign_key %}
{% set fk = carried_foreign_key %}
ALTER TABLE {{ table|ident }}
  ADD CONSTRAINT {{ fk.constraint|ident }} FOREIGN KEY ({{ fk.columns|idents }})
  REFERENCES {{ fk.parent|ident }} ({{ fk.parent_columns|idents }})
{%- if fk.match_full %} MATCH FULL{% endif %} ON DELETE {{ fk.on_delete|sql }} ON UPDATE {{ fk.on_update|sql }}
{%- if fk.deferrable %} DEFERRABLE{% if fk.deferred %} INITIALLY DEFERRED{% endif %}{% endif %} NOT VALID;
{% endif %}
{% endblock %}

{% block validate_carried %}
{% if carried_constraint %}
ALTER TABLE {{ table|ident }} VALIDATE CONSTRAINT {{ carried_constraint|ident }};
{% endif %}
{% endblock %}
{% block drop_carried_constraint %}
{% if carried_constraint %}
ALTER TABLE {{ table|ident }} DROP CONSTRAINT IF EXISTS {{ carried_constraint|ident }};
{% endif %}
{% endblock %}

{#- Privileges on the old column, granted on the new one before the switch. -#}
{% block carry_grants %}
{% for g in grants %}
GRANT {{ g.privilege|sql }} ({{ new|ident }}) ON {{ table|ident }} TO {% if g.role %}{{ g.role|ident }}{% else %}PUBLIC{% endif %}{% if g.grantable %} WITH GRANT OPTION{% endif %};
{% endfor %}
{% endblock %}
{% block revoke_carried_grants %}
{% for g in grants %}
REVOKE {{ g.privilege|sql }} ({{ new|ident }}) ON {{ table|ident }} FROM {% if g.role %}{{ g.role|ident }}{% else %}PUBLIC{% endif %};
{% endfor %}
{% endblock %}

{% block relax_old %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ old|ident }} DROP NOT NULL;
{% endblock %}
{% block restore_old %}
{% if old_required %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ old|ident }} SET NOT NULL;
{% endif %}
{% endblock %}

{% block contract %}
{% if sync == "trigger" %}
DROP TRIGGER IF EXISTS {{ trigger|ident }} ON {{ table|ident }};
DROP FUNCTION IF EXISTS {{ function|ident }}();
{% endif %}
{% if old_default %}
ALTER TABLE {{ table|ident }} ALTER COLUMN {{ new|ident }} SET DEFAULT {{ old_default|sql }};
{% elif move_default %}
-- {{ new|ident }} takes over the default of {{ old|ident }}, if it has one.
DO {{ dollar_quote }}
DECLARE
  old_default text;
BEGIN
  SELECT pg_get_expr(d.adbin, d.adrelid) INTO old_default
    FROM pg_attrdef d
    JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
   WHERE d.adrelid = {{ table|ident|literal }}::regclass
     AND a.attname = {{ old|literal }};
  IF old_default IS NOT NULL THEN
    EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s', {{ table|ident|literal }}::regclass, {{ new|literal }}, old_default);
  END IF;
END
{{ dollar_quote }};
{% endif %}
{% if owned_sequence %}
-- The sequence {{ old|ident }} owns goes to {{ new|ident }}, which now uses it.
{% if owned_sequence.widen_to %}
ALTER SEQUENCE {{ owned_sequence.name|ident }} AS {{ owned_sequence.widen_to|sql }};
{% endif %}
ALTER SEQUENCE {{ owned_sequence.name|ident }} OWNED BY {{ table|ident }}.{{ new|ident }};
{% endif %}
{% if identity %}
-- {{ new|ident }} becomes the identity column, numbering on from where {{ old|ident }}'s sequence stopped.
DO {{ dollar_quote }}
DECLARE
  position bigint;
  called boolean;
BEGIN
  SELECT s.last_value, s.is_called INTO position, called FROM {{ identity.sequence|ident }} AS s;
  ALTER TABLE {{ table|ident }} DROP COLUMN {{ old|ident }};
  ALTER TABLE {{ table|ident }} ALTER COLUMN {{ new|ident }} ADD GENERATED {{ identity.generated|sql }} AS IDENTITY;
  PERFORM setval(pg_get_serial_sequence({{ table|ident|literal }}, {{ new|literal }}), position, called);
END
{{ dollar_quote }};
{% else %}
ALTER TABLE {{ table|ident }} DROP COLUMN {{ old|ident }};
{% endif %}
{% if comment %}
COMMENT ON COLUMN {{ table|ident }}.{{ new|ident }} IS {{ comment|literal }};
{% endif %}
{% if primary_key %}
-- The copy of the primary key's index becomes the primary key.
ALTER TABLE {{ table|ident }}
  ADD CONSTRAINT {{ primary_key.constraint|ident }} PRIMARY KEY USING INDEX {{ primary_key.index|ident }};
{% endif %}
{% endblock %}
