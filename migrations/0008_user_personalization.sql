-- revision: 0008
-- parents: 0007
-- message: per-user personalization settings
CREATE TABLE user_personalization (
    user_id bigint PRIMARY KEY,
    settings jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_personalization_user_fk FOREIGN KEY (user_id) REFERENCES user_profiles (id)
);
