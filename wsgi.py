from tracker import create_app
from tracker.views.ops import configure_logging

configure_logging()  # JSON log lines with the request id
app = create_app()
