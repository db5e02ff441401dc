SET lock_timeout = '1s';
ALTER TABLE users ADD COLUMN ok text;
ALTER TABLE users ADDD COLUMN typo text;
ALTER TABLE users RENAME COLUMN nick TO nickname;
