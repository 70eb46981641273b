-- What was made from a video on request (a summary, chapters, highlights, a gist, an analysis),
-- by what was asked (`key`: a digest of the kind, prompt, persona and schema), given back at once
-- the second time and removed with the video.
CREATE TABLE digests (
    video_id   TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (video_id, key)
);
