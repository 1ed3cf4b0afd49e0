"""svc-broker: the hall's Mosquitto set-up, its accounts, ACL and certificates."""
