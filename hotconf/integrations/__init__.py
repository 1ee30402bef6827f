"""Integrations with servers and frameworks: uwsgi, gunicorn, flask."""
