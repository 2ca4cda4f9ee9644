-- revision: 0002
-- parents: 0001
-- message: statements that may run twice
-- migrate:no-transaction
ALTER TABLE users ADD COLUMN IF NOT EXISTS nickname text;
CREATE TABLE IF NOT EXISTS tags (id bigint PRIMARY KEY, name text NOT NULL);
