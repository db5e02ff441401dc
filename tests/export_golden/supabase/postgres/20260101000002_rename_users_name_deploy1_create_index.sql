-- phasegate export --to supabase: plan rename-users-name, deploy 1 of 2 (create_index).
-- expand: add users.full_name, kept in step with users.name
-- Ships with the app change: read full_name, write both
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 1 --app-version <VERSION>
-- Runs outside a transaction, alone.
-- Alone in its file: the Supabase CLI (v2.109.0 or later) runs its last statement outside the migration's transaction, after the settings.
-- Undo deploy 1 with phasegate rollback --env <ENV> rename-users-name --phase 1 (the Supabase CLI has no down migrations).

-- create_index (fixture)
SET lock_timeout = '2000ms';
CREATE INDEX CONCURRENTLY "users_full_name_idx" ON "users" ("full_name");
