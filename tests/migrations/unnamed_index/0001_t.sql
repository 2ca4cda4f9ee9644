-- revision: 0001
-- parents: none
-- message: a table with rows
CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, c integer);
INSERT INTO t (c) SELECT g FROM generate_series(1, 1000) AS g;
