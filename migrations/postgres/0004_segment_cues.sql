-- Each segment's cues with their own times (JSON: [{start_s, end_s, text}]), so a player can
-- highlight the words being spoken and a range is cut at cue times, not at segment edges.
ALTER TABLE segments ADD COLUMN cues TEXT NOT NULL DEFAULT '[]';
