-- revision: 0003
-- parents: 0002
-- message: validate the user_personalization foreign key
ALTER TABLE user_personalization VALIDATE CONSTRAINT user_personalization_user_id_fkey;
