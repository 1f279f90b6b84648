-- Versions whose settings hold Python's text of a value ('None', 'True', 'False'): those
-- published before marts.snapshot_log.settings was typed JSON (2026-12-02).
select snapshot_id, cast(settings as varchar) as settings
from marts.snapshot_log
where regexp_matches(cast(settings as varchar), ':\s*"(None|True|False)"')
