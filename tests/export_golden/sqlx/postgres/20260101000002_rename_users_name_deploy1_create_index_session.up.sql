-- no-transaction
-- phasegate export --to sqlx: plan rename-users-name, deploy 1 of 2 (create_index_session).
-- expand: add users.full_name, kept in step with users.name
-- Ships with the app change: read full_name, write both
-- When that app release is live everywhere (in each environment): phasegate mark --env <ENV> rename-users-name --phase 1 --app-version <VERSION>
-- Runs outside a transaction, alone.

-- create_index: the session settings the next migration runs under (Postgres runs a file of several statements as one transaction, so the statement that follows must be alone in its file).
SET lock_timeout = '2000ms';
