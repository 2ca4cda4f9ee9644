-- revision: 0005
-- parents: 0004
-- message: event kinds
ALTER TABLE events ADD COLUMN kind text;
