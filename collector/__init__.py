"""Takes ratings off MQTT, checks them and stores each exactly once in InfluxDB."""
