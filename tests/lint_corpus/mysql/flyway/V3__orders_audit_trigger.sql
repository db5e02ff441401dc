-- Flyway (MySQL): keep orders.updated_at current; drop the old column.
SET SESSION lock_wait_timeout = 5;

DELIMITER //
CREATE TRIGGER orders_touch BEFORE UPDATE ON orders
FOR EACH ROW
BEGIN
    SET NEW.updated_at = NOW();
END //
DELIMITER ;

ALTER TABLE orders DROP COLUMN legacy_status;
