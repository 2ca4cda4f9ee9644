-- revision: 0001
-- parents: none
-- message: user profiles
CREATE TABLE user_profiles (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    display_name text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX user_profiles_email_idx ON user_profiles (lower(email));
