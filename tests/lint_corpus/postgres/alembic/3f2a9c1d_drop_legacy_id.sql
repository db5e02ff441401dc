BEGIN;

-- Running upgrade 1a2b3c4d -> 3f2a9c1d

ALTER TABLE accounts DROP COLUMN legacy_id;

UPDATE alembic_version SET version_num='3f2a9c1d' WHERE alembic_version.version_num = '1a2b3c4d';

COMMIT;
