-- revision: 0002
-- parents: 0001
-- message: records the timeouts in force inside the migration
-- migrate:lock-timeout 750ms
-- migrate:statement-timeout 4s
CREATE TABLE settings_seen AS
    SELECT current_setting('lock_timeout') AS lock_timeout,
           current_setting('statement_timeout') AS statement_timeout;
