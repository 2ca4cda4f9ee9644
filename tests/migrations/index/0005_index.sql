-- revision: 0005
-- parents: 0004
-- message: index built concurrently, slowly
-- migrate:no-transaction
CREATE INDEX CONCURRENTLY users_slow_key ON users (slow_key(id));
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);
