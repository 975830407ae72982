"""The days each daily job has done (EXTENSION: not in the seed)."""

from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class DailyJobRun(models.Model):
    """Daily job `job` did the work of `day`: written in the same transaction as that work.

    The unique (job, day) key is what makes a day run once: a second worker (or a rerun)
    inserting the same pair waits for the first one's transaction and then finds the row, so
    it skips the day; a run that failed rolled back its row with its work, so it is retried.
    """

    id = models.BigAutoField(primary_key=True)
    job = models.CharField(max_length=100)
    day = models.DateField()
    count = models.IntegerField(default=0, db_default=0)
    finished_at = models.DateTimeField(default=timezone.now, db_default=Now())

    class Meta:
        db_table = "daily_job_runs"
        ordering = ["job", "day"]
        constraints = [models.UniqueConstraint(fields=["job", "day"], name="daily_job_runs_job_day_key")]

    def __str__(self) -> str:
        return f"{self.job} {self.day}: {self.count}"
