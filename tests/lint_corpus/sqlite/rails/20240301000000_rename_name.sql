ALTER TABLE "users" RENAME COLUMN "name" TO "full_name";
ALTER TABLE "users" ADD COLUMN "age" integer NOT NULL;
INSERT INTO "schema_migrations" (version) VALUES ('20240301000000');
