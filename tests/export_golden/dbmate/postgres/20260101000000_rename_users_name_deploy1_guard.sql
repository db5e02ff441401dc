-- migrate:up
-- phasegate export --to dbmate: plan rename-users-name, deploy 1 of 2 (guard).
-- expand: add users.full_name, kept in step with users.name
-- Ships with the app change: read full_name, write both
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 1 --app-version <VERSION>

-- guard (fixture)
SELECT 1 FROM phasegate_head WHERE id = 1;

-- migrate:down
-- Undo deploy 1 as a whole: dbmate rollback, 7 times (its files newest first), then phasegate status.
-- undo_add_column (fixture)
SET lock_timeout = '2000ms';
ALTER TABLE users DROP COLUMN full_name;
INSERT INTO phasegate_events (plan) SELECT 'rename-users-name' WHERE false;
