-- revision: 0011
-- parents: 0010
-- message: fix user_personalization foreign key, step 3: drop the old constraint, alone
-- migrate:lock-timeout 500ms
ALTER TABLE user_personalization DROP CONSTRAINT user_personalization_user_fk;
