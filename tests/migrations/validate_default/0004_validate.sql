-- revision: 0004
-- parents: 0003
-- message: validation, about 3 s
ALTER TABLE measurements VALIDATE CONSTRAINT measurements_v_positive;
