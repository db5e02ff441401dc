{#- rename_column, and the rewriting path of change_column_type (which extends
    this file). SQLite triggers cannot assign to NEW, so the sync triggers run
    AFTER the write and update the row they wrote; recursive triggers are off
    by default, so that update does not fire them again.
    Context: table, table_name, old, new, new_type, cast, forward, reverse,
    old_default, move_default, old_required, sync, key, trigger_insert, trigger_update;
    for carrying the old column's objects to the new one (live schema only):
    carried_index (set for one render, none otherwise), inline_reference
    (the old column's own foreign key), drop_before_contract (indexes on the
    old column, which SQLite cannot drop while they exist). -#}

{% macro old_to_new(prefix) -%}
{% if forward and prefix %}(SELECT {{ forward|sql }} FROM (SELECT {{ prefix|sql }}{{ old|ident }} AS {{ old|ident }}))
{%- elif forward %}({{ forward|sql }})
{%- elif cast %}CAST({{ prefix|sql }}{{ old|ident }} AS {{ new_type|sql }})
{%- else %}{{ prefix|sql }}{{ old|ident }}{% endif %}
{%- endmacro %}
{% macro new_to_old(prefix) -%}
{% if reverse %}(SELECT {{ reverse|sql }} FROM (SELECT {{ prefix|sql }}{{ new|ident }} AS {{ new|ident }}))
{%- else %}{{ prefix|sql }}{{ new|ident }}{% endif %}
{%- endmacro %}
{#- The row a trigger fired for: by primary key when known, else by rowid. -#}
{% macro this_row() -%}
{% if key %}{% for k in key %}{% if not loop.first %} AND {% endif %}{{ k|ident }} = NEW.{{ k|ident }}{% endfor %}
{%- else %}rowid = NEW.rowid{% endif %}
{%- endmacro %}

{% block add_column %}
ALTER TABLE {{ table|ident }} ADD COLUMN {{ new|ident }}{% if new_type %} {{ new_type|sql }}{% endif %}
{%- if inline_reference %} REFERENCES {{ inline_reference.parent|ident }}
{%- if inline_reference.parent_columns %} ({{ inline_reference.parent_columns|idents }}){% endif %}
 ON DELETE {{ inline_reference.on_delete|sql }} ON UPDATE {{ inline_reference.on_update|sql }}{% endif %};
{% endblock %}

{% block drop_new_column %}
ALTER TABLE {{ table|ident }} DROP COLUMN {{ new|ident }};
{% endblock %}

{% block sync_trigger %}
CREATE TRIGGER {{ trigger_insert|ident }} AFTER INSERT ON {{ table_name|ident }}
BEGIN
  -- phasegate sync trigger
  UPDATE {{ table_name|ident }}
     SET {{ new|ident }} = CASE WHEN NEW.{{ new|ident }} IS NULL THEN {{ old_to_new("NEW.") }} ELSE NEW.{{ new|ident }} END,
         {{ old|ident }} = CASE WHEN NEW.{{ new|ident }} IS NULL THEN NEW.{{ old|ident }} ELSE {{ new_to_old("NEW.") }} END
   WHERE {{ this_row() }};
END;
{#- Every comparison is COLLATE BINARY: under a NOCASE or RTRIM column's
    collation a write of 'Bob' over 'bob' would look like no write. -#}
{#- On every update, not only of the two columns: an update that moves a
    row's key behind the backfill's walk (or writes any other column of a
    row the walk has not reached) gives it its new column here, so the walk
    needs no final sweep. Only when the row's new column is not already the
    value its old one implies: else the write left nothing to mirror, and the
    UPDATE below would rewrite the row unchanged. The backfill's batches drop
    this trigger inside their own transaction (`Backfill::sync_triggers`). -#}
CREATE TRIGGER {{ trigger_update|ident }} AFTER UPDATE ON {{ table_name|ident }}
  WHEN NEW.{{ new|ident }} IS NOT {{ old_to_new("NEW.") }} COLLATE BINARY
BEGIN
  -- phasegate sync trigger
  UPDATE {{ table_name|ident }}
     SET {{ new|ident }} = CASE WHEN NEW.{{ new|ident }} IS NOT OLD.{{ new|ident }} COLLATE BINARY THEN NEW.{{ new|ident }} ELSE {{ old_to_new("NEW.") }} END,
         {{ old|ident }} = CASE WHEN NEW.{{ new|ident }} IS NOT OLD.{{ new|ident }} COLLATE BINARY AND NEW.{{ new|ident }} IS NOT {{ old_to_new("NEW.") }} COLLATE BINARY THEN {{ new_to_old("NEW.") }} ELSE NEW.{{ old|ident }} END
   WHERE {{ this_row() }};
END;
{% endblock %}

{% block drop_sync_trigger %}
DROP TRIGGER IF EXISTS {{ trigger_insert|ident }};
DROP TRIGGER IF EXISTS {{ trigger_update|ident }};
{% endblock %}

{% block backfill_set %}{{ new|ident }} = {{ old_to_new("") }}{% endblock %}
{% block backfill_pending %}{{ new|ident }} IS NOT {{ old_to_new("") }} COLLATE BINARY{% endblock %}

{% block verify %}
SELECT count(*) FROM {{ table|ident }} WHERE {{ new|ident }} IS NOT {{ old_to_new("") }} COLLATE BINARY
{% endblock %}

{#- A copy of a plain index, for the new column. -#}
{% block carry_index %}
{% if carried_index %}
{% set ix = carried_index %}
CREATE {% if ix.unique %}UNIQUE {% endif %}INDEX IF NOT EXISTS {{ ix.qualified|ident }}
  ON {{ table_name|ident }} (
{%- for k in ix.keys %}{% if not loop.first %}, {% endif %}{{ k.column|ident }}
{%- if k.collation %} COLLATE {{ k.collation|ident }}{% endif %}
{%- if k.descending %} DESC{% endif %}
{%- endfor %});
{% endif %}
{% endblock %}
{% block drop_carried_index %}
{% if carried_index %}
DROP INDEX IF EXISTS {{ carried_index.qualified|ident }};
{% endif %}
{% endblock %}
{#- SQLite cannot add a constraint to an existing column (see the plan's notes). -#}
{% block carry_unique %}{% endblock %}
{% block carry_check %}{% endblock %}
{% block carry_foreign_key %}{% endblock %}
{% block validate_carried %}{% endblock %}
{% block drop_carried_constraint %}{% endblock %}

{#- SQLite cannot drop NOT NULL in place (see the plan's notes). -#}
{% block relax_old %}{% endblock %}
{% block restore_old %}{% endblock %}

{% block contract %}
{% if sync == "trigger" %}
DROP TRIGGER IF EXISTS {{ trigger_insert|ident }};
DROP TRIGGER IF EXISTS {{ trigger_update|ident }};
{% endif %}
{% for index in drop_before_contract %}
DROP INDEX IF EXISTS {{ index|ident }};
{% endfor %}
ALTER TABLE {{ table|ident }} DROP COLUMN {{ old|ident }};
{% endblock %}
