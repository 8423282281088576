-- Which of the given tables (oids) other objects depend on: a view or rule reading it, a foreign key
-- or an inheritance child or partition naming it, a function or a column using its row type. Such
-- a table's schema must be created with those objects; the others can be left out of a partial one.
SELECT DISTINCT c.oid::bigint
  FROM pg_class c
  JOIN pg_depend d ON (d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid)
                   OR (d.refclassid = 'pg_type'::regclass AND d.refobjid = c.reltype)
 WHERE c.oid = ANY (%(oids)s::oid[])
   AND d.deptype = 'n'
   AND NOT (d.classid = 'pg_class'::regclass AND d.objid = c.oid)
   AND NOT (d.classid = 'pg_constraint'::regclass
            AND EXISTS (SELECT 1 FROM pg_constraint k WHERE k.oid = d.objid AND k.conrelid = c.oid))
   AND NOT (d.classid = 'pg_trigger'::regclass
            AND EXISTS (SELECT 1 FROM pg_trigger t WHERE t.oid = d.objid AND t.tgrelid = c.oid))
   AND NOT (d.classid = 'pg_policy'::regclass
            AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.oid = d.objid AND p.polrelid = c.oid))
   AND NOT (d.classid = 'pg_rewrite'::regclass
            AND EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.oid = d.objid AND r.ev_class = c.oid))
   AND NOT (d.classid = 'pg_attrdef'::regclass
            AND EXISTS (SELECT 1 FROM pg_attrdef a WHERE a.oid = d.objid AND a.adrelid = c.oid))
UNION
-- a parent of inheritance children or partitions
SELECT DISTINCT i.inhparent::bigint FROM pg_inherits i WHERE i.inhparent = ANY (%(oids)s::oid[])
UNION
-- an inheritance child (its column order is checked against the restored schema)
SELECT DISTINCT i.inhrelid::bigint FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhrelid = ANY (%(oids)s::oid[]) AND NOT c.relispartition;
