-- revision: 0002
-- parents: 0001
-- message: 300 rows
INSERT INTO measurements SELECT g, g FROM generate_series(2, 300) AS g ON CONFLICT DO NOTHING;
