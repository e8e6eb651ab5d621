"""The home page, tailored to the signed-in role."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request
from flask_login import current_user

from growth.auth.permissions import Permission, require
from growth.home.panels import panels_for

bp = Blueprint("home", __name__)


@bp.route("/")
@require(Permission.HOME)
def index():  # type: ignore[no-untyped-def]
    # Each panel checks its own arguments (a bad one shows its message inside the panel, the page still answers).
    args = request.args.to_dict()
    panels = [panel.render(args) for panel in panels_for(current_app, current_user.role)]
    return render_template("home/index.html", panels=panels)
