"""Dev-only page listing the mail written to the local outbox."""

from flask import Blueprint

bp = Blueprint("outbox", __name__, url_prefix="/dev/outbox")
