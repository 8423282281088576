-- Every schema object Verify compares, one row each: (kind, schema, relation, name, definition);
-- for columns, indexes, constraints, not-null constraints, triggers and policies `name` is the
-- object's own name within `relation`. Owners and privileges are rows of their own (kinds owner and
-- privileges, `name` saying what they belong to), so a difference names them: a privilege is
-- "grantee:PRIVILEGE" (* = with grant option), PUBLIC for everyone, (owner) for the object's owner,
-- the default privileges written out where the catalog holds NULL.
-- `relation` is the table or view an object belongs to (NULL for functions and extensions), so the
-- caller can apply the include/exclude patterns. Runs with search_path = pg_catalog on both sides,
-- so every name inside a definition is schema-qualified the same way whatever the sessions' settings.
-- Objects owned by extensions and the system schemas are skipped.
WITH rels AS (
    SELECT c.oid, c.relname, c.relkind, c.relpersistence, n.nspname, c.relowner, c.relacl,
           c.relrowsecurity, c.relforcerowsecurity, c.relispartition,
           -- where and how its rows are stored: the access method (none for a partitioned table
           -- before PostgreSQL 17) and a tablespace other than the database's default
           coalesce(', access method ' || (SELECT a.amname FROM pg_am a WHERE a.oid = c.relam), '')
           || coalesce(', tablespace ' || (SELECT quote_ident(t.spcname) FROM pg_tablespace t
                                           WHERE t.oid = c.reltablespace), '') AS storage
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
), owned AS (
    -- (schema, relation for the include/exclude patterns, display name, owner, acl, acldefault kind)
    SELECT r.nspname AS schema, r.relname AS relation,
           CASE r.relkind WHEN 'S' THEN 'sequence ' WHEN 'v' THEN 'view ' WHEN 'm' THEN 'materialized view '
                          WHEN 'f' THEN 'foreign table ' ELSE 'table ' END
           || quote_ident(r.nspname) || '.' || quote_ident(r.relname) AS name,
           r.relowner AS owner, r.relacl AS acl, CASE r.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char" AS aclkind
      FROM rels r WHERE r.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
    UNION ALL
    SELECT n.nspname, NULL, 'schema ' || quote_ident(n.nspname), n.nspowner, n.nspacl, 'n'
      FROM pg_namespace n
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
    UNION ALL
    SELECT n.nspname, NULL, CASE p.prokind WHEN 'p' THEN 'procedure ' ELSE 'function ' END || p.oid::regprocedure::text,
           p.proowner, p.proacl, 'f'
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    UNION ALL
    SELECT n.nspname, NULL, 'type ' || t.oid::regtype::text, t.typowner, t.typacl, 'T'
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'b' AND t.typelem = 0)
            OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c')))
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d
                        WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
)
-- tables (ordinary and partitioned)
-- (text, not name: a union of name columns would cut every row's names to 63 bytes)
SELECT 'table' AS kind, r.nspname::text AS schema, r.relname::text AS relation, r.relname::text AS name,
       CASE r.relkind WHEN 'p' THEN 'partitioned table' ELSE 'table' END
       || CASE r.relpersistence WHEN 'u' THEN ', unlogged' ELSE '' END
       || CASE WHEN r.relrowsecurity THEN ', row level security' ELSE '' END
       || CASE WHEN r.relforcerowsecurity THEN ' (forced)' ELSE '' END
       || r.storage AS definition
  FROM rels r
 WHERE r.relkind IN ('r', 'p')

UNION ALL
-- columns of tables: type, not null, default, generated, identity
SELECT 'column', r.nspname, r.relname, a.attname,
       format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
       || CASE WHEN a.attgenerated <> '' THEN ' generated as ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '')
               WHEN ad.adbin IS NOT NULL THEN ' default ' || pg_get_expr(ad.adbin, ad.adrelid)
               ELSE '' END
  FROM rels r
  JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE r.relkind IN ('r', 'p')

UNION ALL
-- the order of each table's columns; an inheritance child's is a kind of its own: pg_dump recreates it
-- with its parents' columns first (CREATE TABLE ... INHERITS), whatever order the source has
SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = r.oid) AND NOT r.relispartition
            THEN 'child_column_order' ELSE 'column_order' END, r.nspname, r.relname, r.relname,
       (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
         WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped)
  FROM rels r
 WHERE r.relkind IN ('r', 'p')

UNION ALL
-- indexes of tables and materialized views
SELECT 'index', r.nspname, r.relname, i.relname, pg_get_indexdef(x.indexrelid)
       || coalesce(' TABLESPACE ' || (SELECT quote_ident(t.spcname) FROM pg_tablespace t
                                      WHERE t.oid = i.reltablespace), '')
  FROM rels r
  JOIN pg_index x ON x.indrelid = r.oid
  JOIN pg_class i ON i.oid = x.indexrelid
 WHERE r.relkind IN ('r', 'p', 'm')

UNION ALL
-- table constraints (primary key, unique, check, foreign key, exclusion); NOT NULL constraints
-- (listed in pg_constraint from PostgreSQL 18 on) are a kind of their own, and so are the constraints
-- PostgreSQL derives from one on a partitioned table (conparentid), named by each version its own way
SELECT CASE WHEN k.contype = 'n' THEN 'not_null' WHEN k.conparentid <> 0 THEN 'derived_constraint'
            ELSE 'constraint' END, r.nspname, r.relname, k.conname,
       pg_get_constraintdef(k.oid)
  FROM rels r
  JOIN pg_constraint k ON k.conrelid = r.oid

UNION ALL
-- row level security policies, with their roles
SELECT 'policy', r.nspname, r.relname, p.polname,
       format('%s %s to %s using (%s) with check (%s)', CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
              CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE'
                            ELSE 'ALL' END,
              (SELECT string_agg(CASE WHEN x = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x) END, ', ' ORDER BY 1)
                 FROM unnest(p.polroles) x),
              pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
  FROM rels r
  JOIN pg_policy p ON p.polrelid = r.oid

UNION ALL
-- user triggers (not the internal ones behind foreign keys)
SELECT 'trigger', r.nspname, r.relname, t.tgname,
       pg_get_triggerdef(t.oid) || CASE t.tgenabled WHEN 'D' THEN ' (disabled)' ELSE '' END
  FROM rels r
  JOIN pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal

UNION ALL
-- views and materialized views
SELECT CASE r.relkind WHEN 'v' THEN 'view' ELSE 'materialized_view' END, r.nspname, r.relname, r.relname,
       pg_get_viewdef(r.oid) || CASE r.relkind WHEN 'm' THEN r.storage ELSE '' END
  FROM rels r
 WHERE r.relkind IN ('v', 'm')

UNION ALL
-- sequences: their definition (values are read separately, see sequence_values)
SELECT 'sequence', r.nspname, r.relname, r.relname,
       format('%s start %s increment %s min %s max %s cache %s%s', format_type(s.seqtypid, NULL), s.seqstart,
              s.seqincrement, s.seqmin, s.seqmax, s.seqcache, CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END)
  FROM rels r
  JOIN pg_sequence s ON s.seqrelid = r.oid

UNION ALL
-- functions and procedures: signature, and an md5 of the full definition (aggregates: signature only)
SELECT 'function', n.nspname, NULL, p.oid::regprocedure::text,
       CASE WHEN p.prokind = 'a' THEN 'aggregate' ELSE 'md5 ' || md5(pg_get_functiondef(p.oid)) END
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')

UNION ALL
-- extensions and their versions
SELECT 'extension', NULL, NULL, e.extname, 'version ' || e.extversion || ' in schema ' || n.nspname
  FROM pg_extension e
  JOIN pg_namespace n ON n.oid = e.extnamespace

UNION ALL
-- schemas
SELECT 'schema', n.nspname, NULL, n.nspname, 'schema'
  FROM pg_namespace n
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')

UNION ALL
-- owners: of relations, schemas, functions and types
SELECT 'owner', o.schema, o.relation, o.name, pg_get_userbyid(o.owner)
  FROM owned o

UNION ALL
-- privileges of the same objects, defaults written out
SELECT 'privileges', o.schema, o.relation, o.name,
       (SELECT coalesce(string_agg(e, ', ' ORDER BY e), '(none)') FROM (
          SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' WHEN a.grantee = o.owner THEN '(owner)'
                               ELSE pg_get_userbyid(a.grantee) END
                          || ':' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END AS e
            FROM aclexplode(coalesce(o.acl, acldefault(o.aclkind, o.owner))) a) x)
  FROM owned o

UNION ALL
-- column privileges (only columns that have any)
SELECT 'privileges', r.nspname, r.relname, 'column ' || quote_ident(r.nspname) || '.' || quote_ident(r.relname)
       || '.' || quote_ident(a.attname),
       (SELECT string_agg(e, ', ' ORDER BY e) FROM (
          SELECT DISTINCT CASE WHEN x.grantee = 0 THEN 'PUBLIC' WHEN x.grantee = r.relowner THEN '(owner)'
                               ELSE pg_get_userbyid(x.grantee) END
                          || ':' || x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END AS e
            FROM aclexplode(a.attacl) x) y)
  FROM rels r
  JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL

UNION ALL
-- default privileges (ALTER DEFAULT PRIVILEGES), per role, schema and kind of object
SELECT 'default_privileges', n.nspname, NULL,
       format('for role %s in %s on %s', pg_get_userbyid(d.defaclrole),
              coalesce('schema ' || quote_ident(n.nspname), 'every schema'),
              CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'
                   WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' ELSE d.defaclobjtype::text END),
       (SELECT string_agg(e, ', ' ORDER BY e) FROM (
          SELECT DISTINCT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END
                          || ':' || x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END AS e
            FROM aclexplode(d.defaclacl) x) y)
  FROM pg_default_acl d
  LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace;
