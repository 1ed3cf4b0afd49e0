"""Grafana dashboards, alert rules and the monthly appraisal over the ratings in InfluxDB."""
