"""Render the nginx site that fronts the portal (``images/nginx/meshhub.conf``).

Rendering is pure: node configuration and paths in, configuration text out.
The template lives with the node image (``images/nginx/``); every
``@@NAME@@`` in it is filled in here, and a name left over is an error, so a
template and its renderer cannot drift apart silently.
"""

from __future__ import annotations

import re
from pathlib import Path

import images
from node.config import NodeConfig
from node.errors import ConfigError

#: The site template shipped with the node image.
TEMPLATE = Path(images.__file__).parent / "nginx" / "meshhub.conf"
#: Where Debian's nginx keeps the micro-cache by default.
DEFAULT_CACHE_DIR = "/var/cache/nginx/meshhub"
#: The portal's own static files (served by nginx directly).
STATIC_DIR = Path(__file__).parent / "static"
#: Extra room over ``portal.upload_max_mb`` for the form around an upload.
FORM_OVERHEAD_MB = 1


def render_site(config: NodeConfig, *, library_dir: str | Path, listen: str = "80",
                cache_dir: str | Path = DEFAULT_CACHE_DIR,
                static_dir: str | Path = STATIC_DIR,
                session_cookie: str = "meshhub_session", lang_cookie: str = "lang",
                portal_address: str | None = None, template: str | None = None,
                tls: tuple[str | Path, str | Path] | None = None,
                tls_listen: str = "443") -> str:
    """The nginx site for this node: listen on ``listen``, proxy to the portal.

    ``portal_address`` (``host:port``) defaults to ``portal.listen:portal.port``.
    ``tls`` (certificate, key) adds HTTPS on ``tls_listen`` and sends organisers'
    and technicians' pages there (:mod:`portal.tls` makes the node's certificate).
    """
    values = {
        "LISTEN": listen,
        "PORTAL": portal_address or f"{config.portal.listen}:{config.portal.port}",
        "STATIC_DIR": _dir(static_dir),
        "LIBRARY_DIR": _dir(library_dir),
        "CACHE_DIR": str(cache_dir),
        "BODY_MAX_MB": str(int(config.portal.upload_max_mb) + FORM_OVERHEAD_MB),
        "SESSION_COOKIE": session_cookie,
        "LANG_COOKIE": lang_cookie,
    }
    if tls is not None:
        values.update(TLS_CERT=str(tls[0]), TLS_KEY=str(tls[1]), TLS_LISTEN=tls_listen)
    for name, value in values.items():
        if re.search(r"[\s;{}'\"]", value):
            raise ConfigError([f"nginx site: {name} {value!r} contains a space, quote, "
                               "brace or semicolon; choose a plainer path"])
    values["TLS"] = _tls_block(values) if tls is not None else "    # (no certificate: HTTP only)"
    text = TEMPLATE.read_text(encoding="utf-8") if template is None else template
    text = re.sub(r"@@([A-Z_]+)@@", lambda m: values.get(m.group(1), m.group(0)), text)
    left = sorted(set(re.findall(r"@@[A-Z_]+@@", text)))
    if left:
        raise ConfigError([f"{TEMPLATE}: no value for {', '.join(left)}"])
    return text


def _tls_block(values: dict[str, str]) -> str:
    """The server's HTTPS lines (certificate paths already checked)."""
    port = values["TLS_LISTEN"].rpartition(":")[2]
    to = "https://$host" + ("" if port == "443" else f":{port}") + "$request_uri"
    return (f"    listen {values['TLS_LISTEN']} ssl default_server;\n"
            f"    ssl_certificate {values['TLS_CERT']};\n"
            f"    ssl_certificate_key {values['TLS_KEY']};\n"
            "    ssl_protocols TLSv1.2 TLSv1.3;\n"
            "    ssl_session_cache shared:meshhub_tls:1m;\n"
            "    # Organisers' passwords and sessions never travel in clear.\n"
            f"    if ($meshhub_to_https) {{ return 301 {to}; }}")


def _dir(path: str | Path) -> str:
    """An absolute directory path ending in '/', as nginx's ``alias`` wants it."""
    return str(Path(path).resolve()).rstrip("/") + "/"


def standalone_conf(site: str, prefix: str | Path, *, run_as_root: bool = False) -> str:
    """A complete ``nginx.conf`` around ``site`` that keeps all its files in ``prefix``.

    For tests and benchmarks that start their own nginx (``nginx -p PREFIX -c
    CONF -g 'daemon off;'``) next to, never instead of, the system's.
    ``run_as_root`` keeps the workers as root (they cannot read a root-only
    temporary folder as ``nobody``).
    """
    root = Path(prefix).resolve()
    temp = "\n".join(f"    {kind}_temp_path {root}/temp-{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root root;\n" if run_as_root else ""
    indented = "\n".join(("    " + line) if line else "" for line in site.splitlines())
    return (f"{user}worker_processes 1;\npid {root}/nginx.pid;\n"
            f"error_log {root}/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n    include /etc/nginx/mime.types;\n"
            "    default_type application/octet-stream;\n"
            f"{temp}\n{indented}\n}}\n")
