-- revision: 0001
-- parents: none
-- message: extensions, schemas and types
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE SCHEMA billing;
COMMENT ON SCHEMA billing IS 'Invoices and payments';
CREATE TYPE account_state AS ENUM ('trial', 'active', 'suspended', 'closed');
CREATE TYPE billing.currency AS ENUM ('EUR', 'USD', 'CHF');
CREATE DOMAIN email_address AS citext CHECK (VALUE ~ '^[^@]+@[^@]+$');
CREATE DOMAIN billing.positive_cents AS bigint NOT NULL DEFAULT 0 CONSTRAINT cents_non_negative CHECK (VALUE >= 0);
CREATE TYPE money_amount AS (cents bigint, currency billing.currency);
COMMENT ON TYPE account_state IS 'Lifecycle of an account: trial → active → closed';
CREATE SEQUENCE billing.invoice_number_seq AS integer START WITH 1000 INCREMENT BY 1 CACHE 1;
