-- revision: 0001
-- parents: none
-- message: users
CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
