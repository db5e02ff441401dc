-- Flyway migration: rename users.name to users.full_name
-- Author: platform team

ALTER TABLE users RENAME COLUMN name TO full_name;
