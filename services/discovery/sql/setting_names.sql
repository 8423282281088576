-- The parameters the server knows (a database setting of another one cannot be set on it).
SELECT name FROM pg_settings ORDER BY 1;
