BEGIN;

-- Running upgrade 3f2a9c1d -> 7c1e2b3a

SET lock_timeout = '2s';

CREATE TABLE products (
    id SERIAL NOT NULL,
    sku VARCHAR(32) NOT NULL,
    PRIMARY KEY (id)
);

UPDATE alembic_version SET version_num='7c1e2b3a' WHERE alembic_version.version_num = '3f2a9c1d';

COMMIT;
