-- revision: 0003
-- parents: 0002
-- message: account names
ALTER TABLE accounts ADD COLUMN name text;
