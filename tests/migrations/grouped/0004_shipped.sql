-- revision: 0004
-- parents: 0003
-- message: on a table an earlier migration created
ALTER TABLE orders ADD COLUMN shipped boolean;
