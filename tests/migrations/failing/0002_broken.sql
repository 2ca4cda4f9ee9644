-- revision: 0002
-- parents: 0001
-- message: refers to a table that does not exist

CREATE TABLE kept_only_if_all_succeeds (id int);
INSERT INTO no_such_table VALUES (1);
