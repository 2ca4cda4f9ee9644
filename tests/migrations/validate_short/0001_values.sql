-- revision: 0001
-- parents: none
-- message: rows and a CHECK whose validation takes about 3 seconds
CREATE FUNCTION slow_positive(v int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM pg_sleep(0.01);
    RETURN v > 0;
END $$;
CREATE TABLE measurements (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO measurements VALUES (1, 1);
