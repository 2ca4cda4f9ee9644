-- revision: 0002
-- parents: 0001
-- message: fix user_personalization foreign key
ALTER TABLE user_personalization
    ADD CONSTRAINT user_personalization_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE NOT VALID;
