\set ON_ERROR_STOP on
SET lock_timeout = '2s';

DO $$
BEGIN
    CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
EXCEPTION
    WHEN duplicate_object THEN NULL;
END $$;

-- A nullable column with no default: catalog only.
ALTER TABLE users ADD COLUMN IF NOT EXISTS mood mood;
