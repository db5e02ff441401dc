-- Flyway (MySQL): store totals in cents
ALTER TABLE orders CHANGE COLUMN total total_cents BIGINT NOT NULL;
ALTER TABLE orders MODIFY amount DECIMAL(12,2);
