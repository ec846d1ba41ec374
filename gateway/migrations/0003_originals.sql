-- Records that share a stored original (uploads of the same bytes, deduplicated) are found by
-- its content id, to decide whether an upload is a duplicate and whether the original is
-- still needed.
CREATE INDEX records_original ON records ((record->>'original')) WHERE record ? 'original';
