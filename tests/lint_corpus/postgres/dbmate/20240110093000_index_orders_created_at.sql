-- migrate:up
CREATE INDEX CONCURRENTLY idx_orders_created_at ON orders (created_at);

-- migrate:down
DROP INDEX idx_orders_created_at;
