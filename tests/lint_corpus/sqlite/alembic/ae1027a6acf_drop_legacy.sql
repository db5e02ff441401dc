BEGIN TRANSACTION;

-- Running upgrade  -> ae1027a6acf

ALTER TABLE users DROP COLUMN legacy;

UPDATE alembic_version SET version_num='ae1027a6acf' WHERE alembic_version.version_num = '27c6a30d7c24';

COMMIT;
