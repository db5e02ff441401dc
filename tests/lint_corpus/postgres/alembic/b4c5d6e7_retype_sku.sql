BEGIN;

-- Running upgrade 9d8e7f6a -> b4c5d6e7

SET lock_timeout = '2s';

-- Not binary-coercible: text to integer rewrites the table.
ALTER TABLE products ALTER COLUMN sku TYPE INTEGER USING sku::integer;

UPDATE alembic_version SET version_num='b4c5d6e7' WHERE alembic_version.version_num = '9d8e7f6a';

COMMIT;
