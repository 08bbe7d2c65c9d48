"""The handler most teams write first, as the comparison for bench/naive.py: on a webhook, call GenAuth through
the official SDK inside the request (get-mfa-status, then set-users-mfa-status), then answer.
Served by gunicorn with the same config/gunicorn.conf.py as the service. Not for production."""

import hmac
import os

from flask import Flask, abort, request
from genauth.ManagementClient import ManagementClient

app = Flask(__name__)
client = ManagementClient(
    os.environ["GENAUTH_ACCESS_KEY_ID"], os.environ["GENAUTH_ACCESS_KEY_SECRET"], host=os.environ["GENAUTH_HOST"]
)


@app.post("/webhooks/genauth")
def webhook():
    if not hmac.compare_digest(request.headers.get("x-authing-token", ""), os.environ["GENAUTH_WEBHOOK_SECRET"]):
        abort(401)
    data = request.get_json()["data"]
    user = data.get("user", data)
    status = client.get_user_mfa_status(user["id"])
    if status["statusCode"] != 200:
        abort(502)
    trigger = status["data"]
    factors = trigger.get("applicationMfa") or []
    if not any(factor["mfaPolicy"] == "SMS" and factor["status"] == 1 for factor in factors):
        trigger["applicationMfa"] = [*factors, {"mfaPolicy": "SMS", "status": 1, "sort": len(factors)}]
        trigger["mfaPhone"], trigger["mfaPhoneCountryCode"] = user["phone"], "+86"
        if client.set_users_mfa_status(mfa_trigger_data=trigger, user_id=user["id"])["statusCode"] != 200:
            abort(502)
    return {"success": True}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
