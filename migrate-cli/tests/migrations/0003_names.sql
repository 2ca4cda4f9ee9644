-- revision: 0003
-- parents: 0002
-- message: user names
ALTER TABLE users ADD COLUMN name text;
