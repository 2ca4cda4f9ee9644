-- revision: 0005
-- parents: 0004
-- message: each user's daily top 3 articles
CREATE TABLE daily_top_articles (
    user_id bigint NOT NULL REFERENCES user_profiles (id) ON DELETE CASCADE,
    day date NOT NULL,
    rank smallint NOT NULL CHECK (rank BETWEEN 1 AND 3),
    title text NOT NULL,
    url text NOT NULL
);
