-- revision: 0003b
-- parents: 0002
-- message: per-user muted themes and topics (the other branch)
CREATE TABLE user_muted_themes (
    user_id bigint NOT NULL REFERENCES user_profiles (id) ON DELETE CASCADE,
    theme text NOT NULL,
    PRIMARY KEY (user_id, theme)
);
CREATE TABLE user_muted_topics (
    user_id bigint NOT NULL REFERENCES user_profiles (id) ON DELETE CASCADE,
    topic text NOT NULL,
    PRIMARY KEY (user_id, topic)
);
