SET SESSION lock_wait_timeout = 5;
CREATE INDEX index_users_on_email ON users (email);
ALTER TABLE users ADD INDEX index_users_on_name (name), ALGORITHM=INPLACE, LOCK=NONE;
RENAME TABLE invoices TO bills;
INSERT INTO schema_migrations (version) VALUES ('20240201100000');
