-- revision: 0002
-- parents: 0001
-- message: posts
CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id), body text);
