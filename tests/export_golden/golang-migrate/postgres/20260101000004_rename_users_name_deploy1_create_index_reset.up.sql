-- phasegate export --to golang-migrate: plan rename-users-name, deploy 1 of 2 (create_index_reset).
-- expand: add users.full_name, kept in step with users.name
-- Ships with the app change: read full_name, write both
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 1 --app-version <VERSION>
-- Runs outside a transaction, alone.

-- create_index: back to the session's own settings, so later migrations do not inherit them.
RESET lock_timeout;
