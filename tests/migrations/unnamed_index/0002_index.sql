-- revision: 0002
-- parents: 0001
-- message: an index without a name, built without blocking writes
-- migrate:no-transaction
CREATE INDEX CONCURRENTLY ON t (c);
