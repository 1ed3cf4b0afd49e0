"""svc-console: the hall console (docs/console.md, to come with #20)."""
