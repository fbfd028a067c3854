"""Names vulture (``make test``) reports as unused that are kept on purpose, each with why.

Reviewed: everything here is read by something vulture cannot see (a template, a
library calling an interface method, JSON of a dataclass, an ``__exit__`` signature),
or is kept as a documented seam that tests drive. Dead code does not belong here:
delete it instead. Names are matched everywhere, so keep the list short.
"""

# ruff: noqa: B018
from vulture.whitelist_utils import Whitelist

_ = Whitelist()

# --- interfaces that a library or the language calls ---------------------------------
_.exc_type, _.tb  # __exit__(self, exc_type, exc, tb) of context managers
_.amt  # node/transfer.py: read(amt) as http.client.HTTPResponse spells it (a Protocol)
_.convert  # node/cli/post_cmd.py: click.ParamType.convert, called by click
_.field_flags  # portal/organisers/forms.py: read by WTForms from a validator
_.readable, _.readinto, _.seekable, _.makefile  # io/socket interfaces (http.client, WSGI)
_.get_path, _.get_title, _.get_mimetype, _.get_contentprovider, _.get_hints  # libzim Item
_.daemon_threads, _.block_on_close  # socketserver settings (node/gate/server.py)
_.do_GET, _.log_message  # http.server handler hooks (node/lab/uplinks.py: the lab's internet)
_.row_factory  # sqlite3.Connection setting
_.handle_accept, _.will_close  # waitress/asyncore server and channel hooks (agent_server)
_._io_refs  # socket.socket's makefile() reference count (node/sync/client.py)
_.__getattr__, _.__dir__  # portal/__init__.py, hardware/__init__.py: PEP 562 lazy attributes
_.when_pressed, _.when_held, _.when_released, _.source_delay  # gpiozero device callbacks
_.permanent  # flask.session.permanent
_.session_interface  # Flask.session_interface, read by Flask (portal/security.py)
_.session_row, _.signed_out_reason  # flask.g attributes read by portal/auth.py's hooks
_.no_cache, _.max_age, _.immutable, _.content_length  # werkzeug response headers
_.fallbacks  # babel.Locale/Translations fallbacks (portal/locale_data.py)
_.toc, _.spine  # ebooklib book structure (portal/sample/files.py)

# --- read by templates (portal/templates) or serialised (dataclasses.asdict, JSON) ---
_.public_endpoint  # organisers/posts.html: the residents' page of an item
_.body_html, _.description_html, _.snippet  # node/store/models.py records
_.submitted_at, _.decided_at, _.from_submission
_.last_seen, _.voltage, _.undervoltage, _.disk_ratio  # technicians' pages
_.set_at  # organisers/network.html: when the gate mode was changed
_.sent_at  # organisers/broadcast.html: when the emergency notice in force was sent
_.user_portal_url  # meshhub diag portal --json: the captive API's answer
_.ERRORS  # node/gate/protocol.py: the socket protocol's error codes, documented in one place
_.help  # node/config/schema.py Setting.help: docs/node-toml.md is generated from it

# --- records that describe what was found or done, field by field --------------------
_.under_voltage, _.frequency_capped, _.soft_temperature_limit  # hardware/board.py throttling flags
_.under_voltage_occurred, _.frequency_capped_occurred, _.throttled_occurred  # (as the SoC says)
_.soft_temperature_limit_occurred
_.is_raspberry_pi  # hardware/board.py BoardFacts
_.bus_voltage_v, _.shunt_voltage_v, _.current_a, _.power_w  # hardware/ina2xx.py reading
_.pressure_hpa  # hardware/bme280.py reading, in the unit weather reports use
_.ipv6, _.router_id  # node/mesh/babel_parse.py: babeld's dump, as it says it
_.bytes_per_sector  # provisioning/customise/partitions.py FatInfo
_.verify_seconds  # provisioning/flash/writer.py FlashResult

# --- the datasheet's register map, whole ---------------------------------------------
_.ALERT_LIMIT  # hardware/ina2xx.py
_.write_i2c_block_data  # hardware/bus.py: the smbus2 bus interface the drivers are given

# --- seams that tests (and bench/) drive -------------------------------------------------
_.attach, _.detach, _.conversions  # hardware/simulated.py: the simulated I2C bus and chips
_.restarts  # node/mesh/supervisor.py: how often a daemon was restarted
_.misses, _.size_bytes  # portal/pagecache.py statistics
_.standalone_conf  # portal/nginx.py: nginx run by hand (bench/portal.py, tests/portal)
_.converged  # node/lab/lab.py MeshLab.converged: the lab tests' check that every node routes
#            to every other (lab up itself now waits on each node's own routes)
_.log_tail  # node/lab/observer.py: Prometheus's log in a lab test's failure message
_.HOSTAPD_KEYS  # node/net/render_hostapd.py: the keys it may write (checked by a test)
_.STEPS  # node/update/updater.py: the state machine's steps (a power cut at each, tested)
_.install_initial  # node/trust/registry.py: installs anchors + first snapshot (tests; registry
#                  is left to the trust-package change of issue 12)
_.sensor_source  # node/health/hw.py: I2C sensors as a health source; the agent does not
#                wire it yet (only tests do): remove or wire it, do not forget it here

_.served  # portal/residents/zimfast.py: requests the short way answered itself; tests read it
#          to know it answered (an answer equal to Flask's proves nothing on its own)

# --- node.toml settings that no code reads as cfg.SECTION.KEY (node/config/sections.py) --
_.led_pin, _.button_pin, _.button_hold_seconds  # hardware.*: declared and documented, but
#   nothing starts hardware/status.py on a node yet: wire it (or drop the keys), then remove
