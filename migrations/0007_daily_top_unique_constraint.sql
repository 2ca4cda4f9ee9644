-- revision: 0007
-- parents: 0006
-- message: turn the unique index into the constraint (instant)
ALTER TABLE daily_top_articles
    ADD CONSTRAINT daily_top_articles_user_day_rank_key UNIQUE USING INDEX daily_top_articles_user_day_rank_idx;
