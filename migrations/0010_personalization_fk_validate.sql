-- revision: 0010
-- parents: 0009
-- message: fix user_personalization foreign key, step 2: validate (writes go on during the scan)
ALTER TABLE user_personalization VALIDATE CONSTRAINT user_personalization_user_fk_cascade;
