-- revision: 0001
-- parents: none
-- message: comptes
CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);
CREATE INDEX accounts_name ON accounts (name);
INSERT INTO accounts VALUES (1, 'Zoë Müller 🎉');
