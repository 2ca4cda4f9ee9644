-- revision: 0002
-- parents: 0001
-- message: a nickname, indexed without blocking writes
-- migrate:no-transaction
ALTER TABLE users ADD COLUMN nickname text;
CREATE INDEX CONCURRENTLY users_nickname_idx ON users (nickname);
