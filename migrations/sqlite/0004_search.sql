-- Search. By meaning: one vector (384 f32, little-endian) per timeline segment, made by the
-- embedding step; by keyword: FTS5 over each segment's text (said, on screen, seen), BM25-ranked,
-- with the porter stemmer so "planting" finds "plant". FTS5 tables take no foreign keys: the
-- trigger removes a video's rows with the video, in the same transaction.
CREATE TABLE segment_vectors (
    video_id TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    vector   BLOB NOT NULL,
    PRIMARY KEY (video_id, idx)
);

CREATE VIRTUAL TABLE segments_fts USING fts5 (
    text,
    video_id UNINDEXED,
    idx UNINDEXED,
    tokenize = 'porter unicode61'
);

CREATE TRIGGER videos_fts_delete AFTER DELETE ON videos BEGIN
    DELETE FROM segments_fts WHERE video_id = old.id;
END;

-- Timelines made before search existed become searchable by keyword now; their vectors are
-- made when the server starts.
INSERT INTO segments_fts (text, video_id, idx)
SELECT trim(transcript || ' ' || on_screen_text || ' ' || caption), video_id, idx FROM segments;
