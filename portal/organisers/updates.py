"""The organisers' update switch: pause or resume automatic updates for the whole mesh.

An admin's choice is a signed ``update.pause`` entry (docs/entry-format.md,
"Updates"): it replicates like any other content, and every node's update
service honours the latest one it holds (docs/updates.md). The page also
shows what this node's autoupdater reports, when its agent runs one.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length

from node.errors import ValidationError
from portal.auth import login_required
from portal.i18n import translate_message
from portal.organisers.services import actor, store

bp = Blueprint("updates", __name__)


class PauseForm(FlaskForm):
    """Pause or resume (which one depends on the current state) with an optional reason."""

    reason = TextAreaField(_l("Reason (optional, shown to the other admins)"),
                           validators=[Length(max=500)])


def node_update_status() -> dict[str, Any] | None:
    """This node's ``/update/v1/status`` from its agent, or None (updates off, agent down)."""
    config = current_app.config["NODE_CONFIG"]
    host = config.agent.listen
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - compared
    url = f"http://{host}:{config.agent.port}/update/v1/status"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            doc = json.loads(response.read(1024 * 1024))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


@bp.route("/updates", methods=["GET", "POST"])
@login_required("admin")
def index() -> ResponseReturnValue:
    """Show the mesh-wide pause and this node's update state; toggle the pause."""
    from node.update.pause import pause_state, set_pause  # node.update: only on this page

    state = pause_state(store().path)
    form = PauseForm()
    if form.validate_on_submit():
        try:
            state = set_pause(store(), not state.paused, actor(), form.reason.data or "")
        except ValidationError as exc:
            form.reason.errors = [translate_message(exc.fields.get("reason", str(exc)))]
        else:
            current_app.logger.warning("updates %s for the mesh by %s",
                                       "paused" if state.paused else "resumed", actor())
            flash(_l("Updates are paused for the whole mesh. Every node stops updating as soon "
                     "as it receives this.") if state.paused else
                  _l("Updates are resumed for the whole mesh."), "success")
            return redirect(url_for("organisers.updates.index"), code=303)
    return render_template("organisers/updates.html", form=form, state=state,
                           node=node_update_status())
