-- A kept conversation is the tenant's: keyed by tenant and id, not id alone (with id alone, a
-- second tenant's turns under an id the first had used were silently dropped).
ALTER TABLE sessions DROP CONSTRAINT sessions_pkey;
ALTER TABLE sessions ADD PRIMARY KEY (tenant, id);
