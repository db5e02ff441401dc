-- phasegate export --to sqlx: plan rename-users-name, deploy 2 of 2 (guard).
-- contract: drop users.name
-- Ships with the app change: stop writing name
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 2 --app-version <VERSION>
-- Irreversible: deploy 2 cannot be undone.

-- guard (fixture)
SELECT 1 FROM phasegate_head WHERE id = 1;
