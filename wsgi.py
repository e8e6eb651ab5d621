"""WSGI entry point for gunicorn: `gunicorn wsgi:app`."""

from growth.app import create_app

app = create_app()
