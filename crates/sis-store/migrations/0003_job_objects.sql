-- Job audio and results kept in object storage (when the server has one):
-- result_key names the result document instead of the result column, and
-- audio_key the downloaded audio, so a job taken over by another worker
-- does not fetch data_url again.
ALTER TABLE jobs ADD COLUMN result_key TEXT;
ALTER TABLE jobs ADD COLUMN audio_key TEXT;
