-- phasegate export --to prisma: plan rename-users-name, deploy 2 of 2 (drop_column).
-- contract: drop users.name
-- Ships with the app change: stop writing name
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 2 --app-version <VERSION>
-- Irreversible: deploy 2 cannot be undone.

-- drop_column (fixture)
ALTER TABLE users DROP COLUMN name;
INSERT INTO phasegate_events (plan) SELECT 'rename-users-name' WHERE 0;
