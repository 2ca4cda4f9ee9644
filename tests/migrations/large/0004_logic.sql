-- revision: 0004
-- parents: 0003
-- message: functions, triggers, views and policies
CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION touch_updated_at() IS 'keeps updated_at current';
CREATE FUNCTION billing.account_total(account bigint) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(total), 0) FROM billing.invoices WHERE account_id = account
$$;
CREATE PROCEDURE billing.close_account(account bigint) LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET state = 'closed' WHERE id = account;
END;
$$;
CREATE VIEW active_accounts AS
    SELECT id, name, billing.account_total(id) AS total FROM accounts WHERE state = 'active';
CREATE VIEW active_account_names WITH (security_barrier) AS SELECT name FROM active_accounts;
CREATE MATERIALIZED VIEW billing.monthly_revenue AS
    SELECT date_trunc('month', issued_on) AS month, currency, sum(total) AS total
    FROM billing.invoices GROUP BY 1, 2;
CREATE UNIQUE INDEX monthly_revenue_key ON billing.monthly_revenue (month, currency);
COMMENT ON MATERIALIZED VIEW billing.monthly_revenue IS 'refreshed nightly';
CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing.invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing.invoices FORCE ROW LEVEL SECURITY;
CREATE POLICY users_same_account ON users FOR SELECT TO PUBLIC
    USING (account_id = current_setting('app.account_id', true)::bigint);
CREATE POLICY users_insert ON users AS RESTRICTIVE FOR INSERT
    WITH CHECK (locale <> '');
CREATE POLICY invoices_account ON billing.invoices
    USING (account_id = current_setting('app.account_id', true)::bigint)
    WITH CHECK (account_id = current_setting('app.account_id', true)::bigint);
