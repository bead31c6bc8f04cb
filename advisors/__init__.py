"""Advisors: rules, alert lifecycle, notifiers, recommendations and the actions they request.

Rules and lifecycle (`advisors.rules`, `advisors.engine`, `advisors.config`) are plain Python with
no Django import: the same code runs in Celery and in `manage.py evaluate`.
"""
