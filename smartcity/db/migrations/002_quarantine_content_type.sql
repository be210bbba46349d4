-- Keep the MQTT v5 content type with quarantined messages, so a replay decodes them as received
-- (SenML can be announced by content type alone).
ALTER TABLE quarantine ADD COLUMN content_type text;
