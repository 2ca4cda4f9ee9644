-- revision: 0001
-- parents: none
-- message: accounts
CREATE TABLE accounts (id bigint PRIMARY KEY, email text);
