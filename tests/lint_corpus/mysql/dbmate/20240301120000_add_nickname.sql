-- migrate:up
SET SESSION lock_wait_timeout = 5;
ALTER TABLE users ADD COLUMN nickname VARCHAR(64) NULL, ALGORITHM=INSTANT;
ALTER TABLE users ADD INDEX idx_users_nickname (nickname), ALGORITHM=INPLACE, LOCK=NONE;

-- migrate:down
ALTER TABLE users DROP COLUMN nickname;
