-- revision: 0006
-- parents: 0005
-- message: one article per rank and day, indexed without blocking writes
-- migrate:no-transaction
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS daily_top_articles_user_day_rank_idx
    ON daily_top_articles (user_id, day, rank);
