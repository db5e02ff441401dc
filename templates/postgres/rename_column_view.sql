{#- rename_column with `strategy: view`: the table moves aside under `base`
    and a view takes its name, showing every column of the table plus the
    renamed column a second time under its new name. A view whose columns
    are plain columns of one table is automatically updatable (Postgres
    docs, CREATE VIEW, "Updatable Views"): inserts, updates, deletes,
    RETURNING and ON CONFLICT reach the table, columns an insert leaves out
    take the table's defaults, and the table's triggers, constraints and
    foreign keys (both ways) stay where they are.
    Context: table, table_name, base, base_name, old, new, comment. -#}

{#- REVOKE ALL on `rel` (a PL/pgSQL variable of the DO blocks below:
    base_rel or view_rel) from every grantee but its owner. -#}
{% macro revoke_all(rel) -%}
FOR g IN
    SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee
      FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
      LEFT JOIN pg_roles r ON r.oid = a.grantee
     WHERE c.oid = {% if rel == "view" %}view_rel{% else %}base_rel{% endif %} AND a.grantee <> c.relowner
  LOOP
    EXECUTE format('REVOKE ALL ON %s FROM %s', {% if rel == "view" %}view_rel{% else %}base_rel{% endif %}, g.grantee);
  END LOOP;
{%- endmacro %}

{#- One relation's privileges granted on the other: table-wide ones, and
    each column's. Table to view (`to_view`): every entry the table lists,
    the renamed column's under both its names. View to table: all but the
    view owner's own entries, the renamed column's (under either name) under
    its table name. -#}
{% macro grant_all(to_view) -%}
FOR g IN
    SELECT a.privilege_type, a.is_grantable, NULL::name AS column_name,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee
      FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
      LEFT JOIN pg_roles r ON r.oid = a.grantee
     WHERE c.oid = {% if to_view %}base_rel{% else %}view_rel AND a.grantee <> c.relowner{% endif +%}
       AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE', 'REFERENCES', 'TRIGGER')
    UNION{% if to_view %} ALL{% endif +%}
    SELECT a.privilege_type, a.is_grantable, n.name,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END
      FROM pg_attribute att CROSS JOIN LATERAL aclexplode(att.attacl) a
{% if to_view %}
      CROSS JOIN LATERAL (SELECT att.attname UNION ALL
                          SELECT {{ new|literal }}::name WHERE att.attname = {{ old|literal }}) AS n(name)
{% else %}
      CROSS JOIN LATERAL (SELECT CASE WHEN att.attname = {{ new|literal }} THEN {{ old|literal }}::name ELSE att.attname END) AS n(name)
{% endif %}
      LEFT JOIN pg_roles r ON r.oid = a.grantee
     WHERE att.attrelid = {% if to_view %}base_rel{% else %}view_rel{% endif %} AND att.attnum > 0 AND NOT att.attisdropped
       AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
  LOOP
    EXECUTE format('GRANT %s%s ON %s TO %s%s', g.privilege_type,
      CASE WHEN g.column_name IS NULL THEN '' ELSE format(' (%I)', g.column_name) END,
      {%+ if to_view %}view_rel{% else %}base_rel{% endif %}, g.grantee,
      CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
{%- endmacro %}

{#- The view, its comment, its owner (the table's), and exactly the table's
    privileges granted on it (default privileges revoked): table-wide ones, and each column's, the renamed
    column's under both names. The view checks its owner's privileges on the
    table, and each caller's on the view: the same grants, so each role may do
    what it could on the table. A table with row-level security gets a
    security_invoker view (Postgres 15) instead, so its policies apply to each
    caller and not to the owner (who bypasses them); Postgres then checks the
    caller's SELECT on every column the view shows, so a table with both
    row-level security and column privileges is refused; so is a table in a
    publication. -#}
{% macro view() -%}
CREATE VIEW {{ table|ident }} AS
  SELECT *, {{ old|ident }} AS {{ new|ident }} FROM {{ base|ident }};
COMMENT ON VIEW {{ table|ident }} IS {{ comment|literal }};
DO {{ dollar_quote }}
DECLARE
  base_rel regclass := {{ base|ident|literal }}::regclass;
  view_rel regclass := {{ table|ident|literal }}::regclass;
  g record;
BEGIN
  -- An unqualified name: CREATE VIEW made it in the first schema of the
  -- search_path, which need not be the table's.
  IF (SELECT relnamespace FROM pg_class WHERE oid = view_rel) <> (SELECT relnamespace FROM pg_class WHERE oid = base_rel) THEN
    EXECUTE format('ALTER VIEW %s SET SCHEMA %I', view_rel,
      (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = base_rel));
  END IF;
  -- A partition or an inheriting table has its columns renamed through its
  -- parent; a parent by plain inheritance would give FROM ONLY queries its
  -- children's rows through a view.
  IF EXISTS (SELECT FROM pg_inherits WHERE inhrelid = base_rel) THEN
    RAISE EXCEPTION 'table % is a partition or inherits from another table: Postgres renames its columns only through its parent, so the contract could not rename %', {{ table|ident|literal }}, {{ old|literal }}
      USING HINT = 'rename the column on the parent table, or with strategy: copy';
  END IF;
  IF EXISTS (SELECT FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE i.inhparent = base_rel AND p.relkind = 'r') THEN
    RAISE EXCEPTION 'tables inherit from table %: through a view, SELECT, UPDATE and DELETE … FROM ONLY % would reach their rows too', {{ table|ident|literal }}, {{ table|ident|literal }}
      USING HINT = 'rename the column with strategy: copy';
  END IF;
  -- Logical replication and change-data capture name a change by its
  -- table: subscribers would receive users_phasegate_base's.
  IF EXISTS (SELECT FROM pg_publication_tables p JOIN pg_class c ON c.relname = p.tablename
               JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = p.schemaname
              WHERE c.oid = base_rel) THEN
    RAISE EXCEPTION 'table % is in a publication (%): while it stands behind a view its changes would be published under the name %, which subscribers and change-data capture do not know', {{ table|ident|literal }},
      (SELECT string_agg(DISTINCT quote_ident(p.pubname), ', ') FROM pg_publication_tables p JOIN pg_class c ON c.relname = p.tablename
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = p.schemaname WHERE c.oid = base_rel),
      base_rel::text
      USING HINT = 'rename the column with strategy: copy';
  END IF;
  -- The view's privileges are the table's: none from default privileges
  -- (ALTER DEFAULT PRIVILEGES) that the table does not have.
  {{ revoke_all("view") }}
  IF (SELECT relowner FROM pg_class WHERE oid = base_rel) <> (SELECT relowner FROM pg_class WHERE oid = view_rel) THEN
    EXECUTE format('ALTER VIEW %s OWNER TO %I', view_rel,
      (SELECT rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = base_rel));
  END IF;
  IF (SELECT relrowsecurity FROM pg_class WHERE oid = base_rel) THEN
    IF current_setting('server_version_num')::int < 150000 THEN
      RAISE EXCEPTION 'table % has row-level security: a view in its place must apply the policies to each caller (security_invoker), which needs Postgres 15', {{ table|ident|literal }}
        USING HINT = 'rename the column with strategy: copy';
    END IF;
    IF EXISTS (SELECT FROM pg_attribute WHERE attrelid = base_rel AND attnum > 0 AND NOT attisdropped AND attacl IS NOT NULL) THEN
      RAISE EXCEPTION 'table % has row-level security and column privileges: through a view that applies the policies to each caller (security_invoker), Postgres checks the caller''s SELECT on every column the view shows, so a role that may read only some columns could read none', {{ table|ident|literal }}
        USING HINT = 'rename the column with strategy: copy';
    END IF;
    EXECUTE format('ALTER VIEW %s SET (security_invoker = true)', view_rel);
  END IF;
  {{ grant_all(true) }}
END
{{ dollar_quote }};
{%- endmacro %}

{#- Before the view goes (the contract, or rolling the swap back): the
    privileges granted or revoked on the view since the swap become the
    table's, so a GRANT or REVOKE made on `users` while it was a view holds.
    The renamed column's privileges on the view (under either of its names)
    become its privileges under its table name. -#}
{% macro adopt_view_privileges() -%}
DO {{ dollar_quote }}
DECLARE
  base_rel regclass := {{ base|ident|literal }}::regclass;
  view_rel regclass := {{ table|ident|literal }}::regclass;
  g record;
BEGIN
  {{ revoke_all("table") }}
  FOR g IN
    SELECT DISTINCT att.attname,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS grantee
      FROM pg_attribute att CROSS JOIN LATERAL aclexplode(att.attacl) a
      LEFT JOIN pg_roles r ON r.oid = a.grantee
     WHERE att.attrelid = base_rel AND att.attnum > 0 AND NOT att.attisdropped
  LOOP
    EXECUTE format('REVOKE ALL (%I) ON %s FROM %s', g.attname, base_rel, g.grantee);
  END LOOP;
  {{ grant_all(false) }}
END
{{ dollar_quote }};
{%- endmacro %}

{% block swap_in %}
ALTER TABLE {{ table|ident }} RENAME TO {{ base_name|ident }};
{{ view() }}
{% endblock %}
{% block swap_out %}
{{ adopt_view_privileges() }}
DROP VIEW {{ table|ident }};
ALTER TABLE {{ base|ident }} RENAME TO {{ table_name|ident }};
{% endblock %}

{#- The table takes its name back before the column is renamed, so each
    statement names the objects as the step leaves them (what
    `resolve --as applied` checks). -#}
{% block contract %}
{{ adopt_view_privileges() }}
DROP VIEW {{ table|ident }};
ALTER TABLE {{ base|ident }} RENAME TO {{ table_name|ident }};
ALTER TABLE {{ table|ident }} RENAME COLUMN {{ old|ident }} TO {{ new|ident }};
{% endblock %}
{% block contract_back %}
ALTER TABLE {{ table|ident }} RENAME TO {{ base_name|ident }};
ALTER TABLE {{ base|ident }} RENAME COLUMN {{ new|ident }} TO {{ old|ident }};
{{ view() }}
{% endblock %}
