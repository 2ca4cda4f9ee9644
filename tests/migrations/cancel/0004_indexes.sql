-- revision: 0004
-- parents: 0003
-- message: indexes built without blocking writes
-- migrate:no-transaction
CREATE INDEX CONCURRENTLY events_account_idx ON events (account_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_email_idx ON accounts (email);
