-- A kept conversation is the tenant's: keyed by tenant and id, not id alone (with id alone, a
-- second tenant's turns under an id the first had used were silently dropped).
CREATE TABLE sessions_per_tenant (
    id         TEXT NOT NULL,
    tenant     TEXT NOT NULL,
    turns      TEXT NOT NULL DEFAULT '[]',
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
);
INSERT INTO sessions_per_tenant (id, tenant, turns, updated_at)
    SELECT id, tenant, turns, updated_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_per_tenant RENAME TO sessions;
