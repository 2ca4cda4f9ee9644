-- revision: 0002
-- parents: 0001
CREATE TABLE orders (id bigint PRIMARY KEY, note text);
