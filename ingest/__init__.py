"""MQTT telemetry ingestion: topic → decode → validate → batch → write, acked after commit."""
