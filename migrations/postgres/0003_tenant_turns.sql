-- Jobs are taken in turn across tenants: each tenant's last claim, so the tenant served longest
-- ago goes next (one tenant's hundred uploads do not hold another's one).
CREATE TABLE tenant_turns (
    tenant     TEXT PRIMARY KEY,
    last_claim BIGINT NOT NULL
);
