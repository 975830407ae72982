"""The job runner: the worker's periodic task that runs every registered daily job once per day
(procrastinate; the register is apps/common/jobs.py), and the table of days done (EXTENSION)."""
