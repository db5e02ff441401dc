-- migrate:up transaction:false
SET lock_timeout = '2s';
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_orders_status ON orders (status);

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY IF EXISTS idx_orders_status;
