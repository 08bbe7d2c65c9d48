"""The baseline for the intake benchmark: a bare Flask app that answers 200 to the webhook path, served by
gunicorn with the same ``config/gunicorn.conf.py`` (and the same environment) as the service.

It reads the body, as any receiver must, and does nothing else: no secret check, no parsing, no database.
"""

from flask import Flask, request

app = Flask(__name__)


@app.post("/webhooks/genauth")
def receive() -> tuple[dict[str, bool], int]:
    request.get_data(cache=False)
    return {"success": True}, 200


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
