-- phasegate export --to sqlx: plan rename-users-name, deploy 1 of 2 (record).
-- expand: add users.full_name, kept in step with users.name
-- Ships with the app change: read full_name, write both
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 1 --app-version <VERSION>

-- record (fixture)
INSERT INTO phasegate_events (plan) SELECT 'rename-users-name' WHERE 0;
