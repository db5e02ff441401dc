-- phasegate export --to sqlx: plan rename-users-name, deploy 1 of 2 (record_down).
-- expand: add users.full_name, kept in step with users.name
-- Ships with the app change: read full_name, write both
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 1 --app-version <VERSION>
-- Undo deploy 1 as a whole: sqlx migrate revert --target-version 20260100999999 (reverts its files newest first), then phasegate status.

-- Nothing to undo in this file: deploy 1's undo runs in the down migrations of its first versions.
SELECT 1;
