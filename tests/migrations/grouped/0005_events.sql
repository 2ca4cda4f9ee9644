-- revision: 0005
-- parents: 0004
CREATE TABLE events (id bigint PRIMARY KEY, payload text);
