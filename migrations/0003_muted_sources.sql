-- revision: 0003a
-- parents: 0002
-- message: per-user muted sources (one branch)
CREATE TABLE user_muted_sources (
    user_id bigint NOT NULL REFERENCES user_profiles (id) ON DELETE CASCADE,
    source_id bigint NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
    muted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, source_id)
);
