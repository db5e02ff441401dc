-- migrate:up transaction:false
-- phasegate export --to dbmate: plan rename-users-name, deploy 1 of 2 (create_index_reset).
-- expand: add users.full_name, kept in step with users.name
-- Ships with the app change: read full_name, write both
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 1 --app-version <VERSION>
-- Runs outside a transaction, alone.

-- create_index: back to the session's own settings, so later migrations do not inherit them.
RESET lock_timeout;

-- migrate:down
-- Undo deploy 1 as a whole: dbmate rollback, 7 times (its files newest first), then phasegate status.
-- Nothing to undo in this file: deploy 1's undo runs in the down migrations of its first versions.
SELECT 1;
