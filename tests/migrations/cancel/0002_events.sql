-- revision: 0002
-- parents: 0001
-- message: events
CREATE TABLE events (id bigint PRIMARY KEY, account_id bigint);
