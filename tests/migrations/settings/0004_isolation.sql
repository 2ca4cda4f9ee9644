-- revision: 0004
-- parents: 0003
-- message: records the isolation level the migration ran at
CREATE TABLE isolation_seen AS
    SELECT current_setting('transaction_isolation') AS level;
