-- revision: 0004
-- parents: 0003
-- message: a slow transactional migration
CREATE TABLE audit (id bigint PRIMARY KEY);
SELECT pg_sleep(3);
INSERT INTO audit VALUES (1);
