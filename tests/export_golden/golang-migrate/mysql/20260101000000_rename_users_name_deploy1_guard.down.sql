-- phasegate export --to golang-migrate: plan rename-users-name, deploy 1 of 2 (undo_add_column).
-- expand: add users.full_name, kept in step with users.name
-- Ships with the app change: read full_name, write both
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 1 --app-version <VERSION>
-- Undo deploy 1 as a whole: migrate down 5 (its files newest first), then phasegate status.

-- undo_add_column (fixture)
SET SESSION lock_wait_timeout = 2, SESSION innodb_lock_wait_timeout = 2;
ALTER TABLE users DROP COLUMN full_name;
INSERT INTO phasegate_events (plan) SELECT 'rename-users-name' FROM DUAL WHERE false;
