-- revision: 0009
-- parents: 0008
-- message: fix user_personalization foreign key, step 1: the new constraint, not yet validated
-- migrate:lock-timeout 500ms
ALTER TABLE user_personalization
    ADD CONSTRAINT user_personalization_user_fk_cascade
    FOREIGN KEY (user_id) REFERENCES user_profiles (id) ON DELETE CASCADE NOT VALID;
