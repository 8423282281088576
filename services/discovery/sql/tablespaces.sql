-- Tablespaces: those of the server, and how many relations of this database live in each
-- (0 = none; the database's default tablespace is marked).
SELECT t.spcname                                               AS name,
       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.reltablespace = t.oid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\_toast%')::int AS relations,
       t.oid = (SELECT dattablespace FROM pg_database WHERE datname = current_database()) AS database_default
  FROM pg_tablespace t
 ORDER BY 1;
