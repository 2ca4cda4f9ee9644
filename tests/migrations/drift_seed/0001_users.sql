-- revision: 0001
-- parents: none
-- message: users and their personalization
CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email text NOT NULL,
    display_name text,
    avatar_url text,
    locale text NOT NULL DEFAULT 'en',
    timezone text NOT NULL DEFAULT 'UTC',
    email_verified boolean NOT NULL DEFAULT false,
    marketing_opt_in boolean NOT NULL DEFAULT false,
    last_login_at timestamptz,
    login_count integer NOT NULL DEFAULT 0,
    plan text NOT NULL DEFAULT 'free',
    deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE user_personalization (
    user_id uuid PRIMARY KEY,
    theme text NOT NULL DEFAULT 'light',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_created_at_idx ON users (created_at);
