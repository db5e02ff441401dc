BEGIN;
--
-- Add field bio to user
--
ALTER TABLE "app_user" ADD COLUMN "bio" text NULL;
CREATE INDEX "app_user_bio_idx" ON "app_user" ("bio");
COMMIT;
