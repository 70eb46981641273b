-- Who owns a video (the tenant of the key that added it; '' is the one shared tenant), where to
-- tell its uploader that processing ended, and the fields a dialect's upload carried that the
-- library itself does not use (Reka's description, Mavera's brand...), kept to give them back.
ALTER TABLE videos ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
ALTER TABLE videos ADD COLUMN callback TEXT;
ALTER TABLE videos ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
CREATE INDEX videos_tenant_newest ON videos (tenant, created_at DESC, id DESC);

-- Conversations the server keeps (Memories.ai v1.2's `session_id`): the turns as a JSON array
-- of {role, content}, newest last.
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    turns      TEXT NOT NULL DEFAULT '[]',
    updated_at INTEGER NOT NULL
);
