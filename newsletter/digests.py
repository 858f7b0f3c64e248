"""The "view in browser" page of a subscriber's digest (blueprint `bp`)."""

from flask import Blueprint

bp = Blueprint("digests", __name__)
