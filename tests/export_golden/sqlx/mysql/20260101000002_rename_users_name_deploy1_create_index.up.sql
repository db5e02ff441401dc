-- no-transaction
-- phasegate export --to sqlx: plan rename-users-name, deploy 1 of 2 (create_index).
-- expand: add users.full_name, kept in step with users.name
-- Ships with the app change: read full_name, write both
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 1 --app-version <VERSION>
-- Runs outside a transaction, alone.

-- create_index (fixture)
SET SESSION lock_wait_timeout = 2, SESSION innodb_lock_wait_timeout = 2;
CREATE INDEX `users_full_name_idx` ON `users` (`full_name`) ALGORITHM=INPLACE LOCK=NONE;
