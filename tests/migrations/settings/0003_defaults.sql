-- revision: 0003
-- parents: 0002
-- message: records the default timeouts
INSERT INTO settings_seen
    SELECT current_setting('lock_timeout'), current_setting('statement_timeout');
