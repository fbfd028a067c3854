"""The organisers' network switch: open this node's Wi-Fi, or make everyone accept again.

An admin chooses the gate's mode for *this node only* (see :mod:`node.gate.mode`):
the choice is a local file in the node's data directory, written atomically, read by
the agent within a few seconds. It is not replicated to other nodes and not part of
the signed content. "As in node.toml" removes the file.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField
from wtforms.fields.choices import SelectChoice

from node.config import NodeConfig
from node.errors import ConfigError
from node.gate import effective_mode, mode_file, read_switch, write_switch
from portal.auth import login_required

bp = Blueprint("network", __name__)

#: The choices, in the order shown; "config" means "as in node.toml".
MODE_LABELS = {
    "config": _l("As set in node.toml"),
    "portal": _l("Ask once: residents accept the house rules, then stay connected"),
    "open": _l("Open network: nobody is asked"),
    "forced": _l("Ask everyone again: nobody is remembered"),
}


class GateModeForm(FlaskForm):
    """The gate's mode on this node."""

    mode = RadioField(_l("Residents’ access on this node"),
                      choices=[SelectChoice(value, label) for value, label in MODE_LABELS.items()],
                      default="config")


@bp.route("/network", methods=["GET", "POST"])
@login_required("admin")
def index() -> ResponseReturnValue:
    """Show and change the gate's mode on this node."""
    config: NodeConfig = current_app.config["NODE_CONFIG"]
    path = mode_file(config)
    try:
        switch = read_switch(path)
        damaged = None
    except ConfigError as exc:
        switch, damaged = None, str(exc)
    form = GateModeForm(data={"mode": switch.mode if switch else "config"})
    if form.validate_on_submit():
        chosen = form.mode.data
        write_switch(path, None if chosen == "config" else chosen, set_by=g.account.name)
        current_app.logger.warning("gate mode switch set to %r by %s", chosen, g.account.name)
        flash(_l("Saved. This node applies it within a few seconds."), "success")
        return redirect(url_for("organisers.network.index"), code=303)
    from portal.captive.state import gate_client

    return render_template("organisers/network.html", form=form, switch=switch,
                           damaged=damaged, configured=config.gate.mode,
                           effective=effective_mode(config), labels=MODE_LABELS,
                           has_gate=gate_client().present)
