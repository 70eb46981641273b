-- The video library in Postgres, for replicas that share one library: the schema of
-- migrations/sqlite/0001-0004 in one step, in Postgres's types (times are unix milliseconds,
-- integers 64-bit, vectors 384 f32 little-endian). Every table a video owns cascades from
-- `videos`, so deleting its row removes every trace in the store at once.
CREATE TABLE videos (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
    error       TEXT,
    source_kind TEXT NOT NULL CHECK (source_kind IN ('upload', 'url')),
    source_url  TEXT,
    bytes       BIGINT,
    has_subtitles_file BOOLEAN NOT NULL DEFAULT FALSE,
    duration_s  DOUBLE PRECISION,
    width       BIGINT,
    height      BIGINT,
    has_audio   BOOLEAN,
    steps       TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    ready_at    BIGINT,
    tenant      TEXT NOT NULL DEFAULT '',
    callback    TEXT,
    labels      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX videos_newest ON videos (created_at DESC, id DESC);
CREATE INDEX videos_tenant_newest ON videos (tenant, created_at DESC, id DESC);

-- The job queue, shared by every replica: a worker claims a row (FOR UPDATE SKIP LOCKED) by
-- setting `claimed_by` and a lease, and renews the lease while it works; a row whose lease ran
-- out (its replica died) is claimed by another.
CREATE TABLE jobs (
    video_id    TEXT PRIMARY KEY REFERENCES videos (id) ON DELETE CASCADE,
    attempts    BIGINT NOT NULL DEFAULT 0,
    claimed_by  TEXT,
    lease_until BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX jobs_oldest ON jobs (created_at);

-- The timeline. `search`: the segment's words (said, on screen, seen), English-stemmed, for
-- keyword search (SQLite's FTS5 table in the other backend).
CREATE TABLE segments (
    video_id       TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    idx            BIGINT NOT NULL,
    start_s        DOUBLE PRECISION NOT NULL,
    end_s          DOUBLE PRECISION NOT NULL,
    transcript     TEXT NOT NULL,
    on_screen_text TEXT NOT NULL,
    caption        TEXT NOT NULL,
    keyframe       BIGINT,
    tokens         BIGINT,
    search         tsvector GENERATED ALWAYS AS
                   (to_tsvector('english', transcript || ' ' || on_screen_text || ' ' || caption)) STORED,
    PRIMARY KEY (video_id, idx)
);
CREATE INDEX segments_search ON segments USING GIN (search);

CREATE TABLE keyframes (
    video_id TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    idx      BIGINT NOT NULL,
    time_s   DOUBLE PRECISION NOT NULL,
    ocr_text TEXT NOT NULL,
    caption  TEXT NOT NULL,
    PRIMARY KEY (video_id, idx)
);

CREATE TABLE segment_vectors (
    video_id TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    idx      BIGINT NOT NULL,
    vector   BYTEA NOT NULL,
    PRIMARY KEY (video_id, idx)
);

-- Conversations the server keeps (Memories.ai v1.2's `session_id`).
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    turns      TEXT NOT NULL DEFAULT '[]',
    updated_at BIGINT NOT NULL
);
