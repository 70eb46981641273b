-- The video library. Times are unix milliseconds. Every table a video owns cascades from
-- `videos`, so deleting its row removes every trace in the store at once.
CREATE TABLE videos (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
    error       TEXT,
    source_kind TEXT NOT NULL CHECK (source_kind IN ('upload', 'url')),
    source_url  TEXT,
    bytes       INTEGER,
    has_subtitles_file INTEGER NOT NULL DEFAULT 0,
    duration_s  REAL,
    width       INTEGER,
    height      INTEGER,
    has_audio   INTEGER,
    steps       TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    ready_at    INTEGER
);
CREATE INDEX videos_newest ON videos (created_at DESC, id DESC);

-- The job queue. A worker claims a row by setting `claimed_by` and a lease, and renews the
-- lease while it works; a row whose lease ran out (its worker died) is claimed again. No
-- process is assumed to be the only one.
CREATE TABLE jobs (
    video_id    TEXT PRIMARY KEY REFERENCES videos (id) ON DELETE CASCADE,
    attempts    INTEGER NOT NULL DEFAULT 0,
    claimed_by  TEXT,
    lease_until INTEGER,
    created_at  INTEGER NOT NULL
);

CREATE TABLE segments (
    video_id       TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    idx            INTEGER NOT NULL,
    start_s        REAL NOT NULL,
    end_s          REAL NOT NULL,
    transcript     TEXT NOT NULL,
    on_screen_text TEXT NOT NULL,
    caption        TEXT NOT NULL,
    keyframe       INTEGER,
    PRIMARY KEY (video_id, idx)
);

CREATE TABLE keyframes (
    video_id TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    time_s   REAL NOT NULL,
    ocr_text TEXT NOT NULL,
    caption  TEXT NOT NULL,
    PRIMARY KEY (video_id, idx)
);
