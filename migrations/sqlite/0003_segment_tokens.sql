-- Each segment's size in tokens (o200k), counted once when the timeline is made, so grounding a
-- chat never tokenizes a long timeline on the request path. NULL for timelines made before:
-- those are counted when a chat needs them.
ALTER TABLE segments ADD COLUMN tokens INTEGER;
