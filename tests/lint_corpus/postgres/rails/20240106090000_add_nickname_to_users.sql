-- Safe: a nullable column, and a required one with a constant default
-- (Postgres 11+ stores it in the catalog, no rewrite).
BEGIN;
SET LOCAL lock_timeout = '5s';
ALTER TABLE "users" ADD COLUMN "nickname" character varying;
ALTER TABLE "users" ADD COLUMN "admin" boolean DEFAULT FALSE NOT NULL;
ALTER TABLE "users" ADD COLUMN "created_at" timestamp(6) DEFAULT now() NOT NULL;
INSERT INTO "schema_migrations" (version) VALUES ('20240106090000');
COMMIT;
