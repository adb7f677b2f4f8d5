"""The worker class for `rq worker --worker-class tracker.jobs.worker.Worker`."""

import os

from rq import Worker as BaseWorker

# Jobs that can wait a moment when page views need the CPU (each job runs in a work
# horse process of its own, so the lower priority ends with it).
BACKGROUND_JOBS = {"tracker.jobs.pageviews.write_pageviews"}
NICENESS = 10


class Worker(BaseWorker):
    """An rq worker that imports the jobs and builds the app once, before it forks.

    A plain rq worker forks a work horse per job, and each horse would import the
    package and build the app again (about a second): far more than a sync that finds
    no new mail costs. Built here, every horse inherits them. No connection is opened
    before the fork: the database engine and Redis connect lazily in the horse.
    """

    def work(self, *args, **kwargs):
        import tracker.jobs.pageviews  # noqa: F401  (the job functions)
        import tracker.jobs.sync  # noqa: F401
        from tracker import imap
        from tracker.jobs import _worker_app

        app = _worker_app()
        # Loading the system CA certificates takes tens of milliseconds: once, here.
        imap.ssl_context(app.config["IMAP_CA_FILE"])
        return super().work(*args, **kwargs)

    def main_work_horse(self, job, queue):
        if job.func_name in BACKGROUND_JOBS:
            os.nice(NICENESS)
        return super().main_work_horse(job, queue)
