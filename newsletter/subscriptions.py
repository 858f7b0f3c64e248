"""Sign-up, double opt-in, manage and unsubscribe pages (blueprint `bp`)."""

from flask import Blueprint

bp = Blueprint("subscriptions", __name__)
