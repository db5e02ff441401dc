BEGIN;

-- Running upgrade 7c1e2b3a -> 9d8e7f6a

SET lock_timeout = '2s';

-- Safe: varchar widened and varchar to text are binary-coercible.
ALTER TABLE products ALTER COLUMN sku TYPE VARCHAR(64);

ALTER TABLE products ALTER COLUMN sku TYPE TEXT;

UPDATE alembic_version SET version_num='9d8e7f6a' WHERE alembic_version.version_num = '7c1e2b3a';

COMMIT;
