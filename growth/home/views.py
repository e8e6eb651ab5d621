"""The home page, tailored to the signed-in role."""

from __future__ import annotations

from flask import Blueprint, render_template

from growth.auth.permissions import Permission, require

bp = Blueprint("home", __name__)


@bp.route("/")
@require(Permission.HOME)
def index():  # type: ignore[no-untyped-def]
    return render_template("home/index.html")
