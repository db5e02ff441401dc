-- +goose Up
-- +goose StatementBegin
SET lock_timeout = '2s';
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
-- +goose StatementEnd

-- +goose Down
ALTER TABLE users ALTER COLUMN email DROP NOT NULL;
