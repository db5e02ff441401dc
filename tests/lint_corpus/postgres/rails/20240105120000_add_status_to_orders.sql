-- Generated from db/migrate/20240105120000_add_status_to_orders.rb
BEGIN;
SET LOCAL lock_timeout = '5s';
ALTER TABLE "orders" ADD COLUMN "status" character varying NOT NULL;
CREATE INDEX "index_orders_on_status" ON "orders" ("status");
ALTER TABLE "orders" ADD CONSTRAINT "fk_rails_f868b47f6a"
FOREIGN KEY ("user_id")
  REFERENCES "users" ("id")
;
INSERT INTO "schema_migrations" (version) VALUES ('20240105120000');
COMMIT;
