-- revision: 0003
-- parents: 0002
-- message: the constraint, not validated yet
ALTER TABLE measurements ADD CONSTRAINT measurements_v_positive CHECK (slow_positive(v)) NOT VALID;
