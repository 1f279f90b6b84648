-- The erasures' part of the published file's token (`readers.state`): a new erasure changes it.
SELECT count(*) FROM staging.erasure_log
