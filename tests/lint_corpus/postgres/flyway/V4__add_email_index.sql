SET lock_timeout = '3s';

-- Lookups by e-mail are slow since the signup change.
CREATE INDEX idx_users_email ON users (email);
