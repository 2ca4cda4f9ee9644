-- revision: 0004
-- parents: 0003
-- message: rows and a deliberately slow immutable function for the index build
CREATE FUNCTION slow_key(v bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM pg_sleep(0.01);
    RETURN v;
END $$;
INSERT INTO users (id, email) SELECT g, 'u' || g || '@example.com' FROM generate_series(1, 300) AS g;
