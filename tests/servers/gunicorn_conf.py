from hotconf.integrations.gunicorn import post_fork  # noqa: F401 - re-arms hotconf in each worker
