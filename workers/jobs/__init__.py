"""The platform's periodic work and operational reads, as plain functions.

Each module takes a connection or an engine (never Celery): ``tasks/platform.py``
wraps them in thin tasks that beat fires, and the tests call them directly.

- ``errors``: every failure into ``error_logs``, deduplicated by hash.
- ``health``: one ``system_health_checks`` row a minute.
- ``progress``: quiz attempts into ``user_progress`` and ``educational_analytics``.
- ``sessions``: close what clients left open (plugins, game, login, socket and
  collaboration sessions).
- ``retention``: purge or anonymise old rows in small batches.
- ``queues`` and ``status``: what ``toolbox status`` and the metrics exporter read.
- ``adaptive`` (answer grading, difficulty replay) and ``common`` (job settings,
  batching) serve the others.
"""
