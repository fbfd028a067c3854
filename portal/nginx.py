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
from portal.auth import PRIVATE_COOKIE

#: The site template shipped with the node image.
TEMPLATE = Path(images.__file__).parent / "nginx" / "meshhub.conf"
#: nginx's main-context settings on a node (Debian's nginx.conf includes this folder there).
MAIN_SETTINGS = (Path(images.__file__).parent / "overlay" / "etc" / "nginx" / "modules-enabled"
                 / "90-meshhub.conf")
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
                tls_listen: str = "443", pages_dir: str | Path | None = None) -> str:
    """The nginx site for this node: listen on ``listen``, proxy to the portal.

    ``portal_address`` (``host:port``) defaults to ``portal.listen:portal.port``.
    ``tls`` (certificate, key) adds HTTPS on ``tls_listen`` and sends organisers'
    and technicians' pages there (:mod:`node.tls` makes the node's certificate).
    ``pages_dir`` holds the page files (default ``data_dir/pages``, :mod:`portal.pagefiles`).
    """
    from portal.pagefiles import enabled
    from portal.pagefiles import pages_dir as default_pages_dir
    values = {
        "LISTEN": listen,
        "PORTAL": portal_address or f"{config.portal.listen}:{config.portal.port}",
        "STATIC_DIR": _dir(static_dir),
        "LIBRARY_DIR": _dir(library_dir),
        "CACHE_DIR": str(cache_dir),
        "BODY_MAX_MB": str(int(config.portal.upload_max_mb) + FORM_OVERHEAD_MB),
        "SESSION_COOKIE": session_cookie,
        "LANG_COOKIE": lang_cookie,
        "PRIVATE_COOKIE": PRIVATE_COOKIE,
        "PAGES_DIR": _dir(pages_dir if pages_dir is not None else default_pages_dir(config)),
        "CACHE_SECONDS": str(int(config.portal.cache_seconds)),
    }
    if tls is not None:
        values.update(TLS_CERT=str(tls[0]), TLS_KEY=str(tls[1]), TLS_LISTEN=tls_listen)
    for name, value in values.items():
        if re.search(r"[\s;{}'\"]", value):
            raise ConfigError([f"nginx site: {name} {value!r} contains a space, quote, "
                               "brace or semicolon; choose a plainer path"])
    values["TLS"] = _tls_block(values) if tls is not None else "    # (no certificate: HTTP only)"
    from portal.security import CONTENT_SECURITY_POLICY

    values["CSP"] = CONTENT_SECURITY_POLICY
    from portal.pagefiles import LAZY_ARGS

    values["LAZY_ARGS"] = LAZY_ARGS
    languages = list(config.portal.languages) if enabled(config) else []
    values["LANGUAGE_MAPS"] = language_maps(languages, str(config.portal.default_language),
                                            lang_cookie)
    values["OWN_HOSTS"] = own_hosts(config)
    from portal import welcome_file
    values.update(WELCOME_FILE=welcome_file.FILE_NAME, WELCOME_SLOT=welcome_file.SLOT,
                  TOKEN_COOKIE=welcome_file.TOKEN_COOKIE,
                  JOINED_COOKIE=welcome_file.JOINED_COOKIE)
    text = TEMPLATE.read_text(encoding="utf-8") if template is None else template
    text = re.sub(r"@@([A-Z_]+)@@", lambda m: values.get(m.group(1), m.group(0)), text)
    left = sorted(set(re.findall(r"@@[A-Z_]+@@", text)))
    if left:
        raise ConfigError([f"{TEMPLATE}: no value for {', '.join(left)}"])
    return text


def language_maps(offered: list[str], default: str, lang_cookie: str = "lang") -> str:
    """nginx maps setting ``$meshhub_lang``: the page files' language for this request.

    The same choice as :func:`portal.i18n.negotiate` for the headers browsers
    send, and ``""`` (ask the portal) for any header these expressions cannot
    decide with certainty: a ``lang`` cookie that is not exactly an offered
    code, an offered language with a quality below 1 before any at 1, ``*``, or
    parameters other than ``q``. No ``offered``: always ``""`` (no page files).
    """
    if not offered:
        return ('map $host $meshhub_lang {\n    default "";\n}')
    names = "|".join(offered)
    end = r"(?:[-_;,\s]|$)"
    other = rf"(?!\s*(?:{names}|\*){end})[^,]*,"
    cookie = "\n".join(f"    {code} {code};" for code in offered)
    header = "\n".join(
        f'    "~*^(?:{other})*\\s*{code}(?:[-_][^,;]*)?\\s*(?:;\\s*q=1(?:\\.0{{0,3}})?\\s*)?'
        f'(?:,|$)" {code};' for code in offered)
    nothing = rf'"~*^(?!.*(?:^|,)\s*(?:{names}|\*){end})" {default};'
    only = "\n".join(f"    {_only_offered(code, offered)} {code};" for code in offered)
    return (f"map $cookie_{lang_cookie} $meshhub_lang_cookie {{\n    default \"!\";\n"
            f"    \"\" \"\";\n{cookie}\n}}\n"
            f"map $http_accept_language $meshhub_lang_header {{\n    default \"\";\n"
            f"    \"\" {default};\n{header}\n{only}\n"
            f"    {nothing}\n}}\n"
            "map \"$meshhub_lang_cookie:$meshhub_lang_header\" $meshhub_lang {\n"
            "    default \"\";\n"
            "    \"~^(?<mhcookie>[a-z]+):\" $mhcookie;\n"
            "    \"~^:(?<mhheader>[a-z]+)$\" $mhheader;\n}")


#: One item of an ``Accept-Language`` header as :func:`portal.i18n.negotiate` reads it:
#: a tag, and at most a well-formed quality (anything else sends the header to the portal).
_TAG = r"[a-z]{1,8}(?:[-_][a-z0-9]{1,8})*"
_ITEM = rf"\s*{_TAG}\s*(?:;\s*q\s*=\s*(?:0(?:\.\d{{0,3}})?|1(?:\.0{{0,3}})?)\s*)?"
#: A quality above 0 (an item with q=0 is not a wish).
_POSITIVE = r"(?:1(?:\.0{0,3})?|0\.(?:[1-9]\d{0,2}|0[1-9]\d?|00[1-9]))"


def _only_offered(code: str, offered: list[str]) -> str:
    """A map key for headers where ``code`` is the only offered language named.

    Whatever the order and qualities of the other items, :func:`negotiate`
    then picks ``code`` (named at least once with a quality above 0): browsers
    set to a language the node does not offer, then one it does
    (``fr-FR,fr;q=0.9,en;q=0.8``). Only headers made wholly of plain items
    qualify (no ``*``, no parameter other than ``q``).
    """
    others = "|".join(other for other in offered if other != code)
    absent = rf"(?!(?:[^,]*,)*\s*(?:{others})(?:[-_;,\s]|$))" if others else ""
    named = (rf"(?=(?:[^,]*,)*\s*{code}(?:[-_][a-z0-9]{{1,8}})*\s*"
             rf"(?:;\s*q\s*=\s*{_POSITIVE}\s*)?(?:,|$))")
    return f'"~*^{absent}{named}{_ITEM}(?:,{_ITEM})*$"'


def own_hosts(config: NodeConfig) -> str:
    """Lines of the ``$meshhub_own_host`` map: the names and addresses that are this node.

    The same as the captive portal's own-host test (``portal.captive.views``):
    loopback, the node's portal and mesh addresses, and the clients' domain.
    """
    names = {"", "localhost", "127.0.0.1", "[::1]"}
    try:
        from node.net import address_plan

        plan = address_plan(config)
        names |= {str(plan.portal_address), str(plan.mesh_address)}
    except (ConfigError, ValueError):
        pass
    lines = [f'    "{name}" 1;' for name in sorted(names)]
    domain = str(config.clients.domain).lower().rstrip(".")
    if re.fullmatch(r"[a-z0-9.-]+", domain):
        lines.append(f'    "~^(?:.+\\.)?{re.escape(domain)}\\.?$" 1;')
    return "\n".join(lines)


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
    CONF -g 'daemon off;'``) next to, never instead of, the system's. It holds
    the node's main-context settings (:data:`MAIN_SETTINGS`), so that what runs
    here is what a node runs.
    ``run_as_root`` keeps the workers as root (they cannot read a root-only
    temporary folder as ``nobody``).
    """
    root = Path(prefix).resolve()
    temp = "\n".join(f"    {kind}_temp_path {root}/temp-{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root root;\n" if run_as_root else ""
    indented = "\n".join(("    " + line) if line else "" for line in site.splitlines())
    main = MAIN_SETTINGS.read_text(encoding="utf-8")
    return (f"{user}{main}worker_processes 1;\npid {root}/nginx.pid;\n"
            f"error_log {root}/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n    include /etc/nginx/mime.types;\n"
            "    default_type application/octet-stream;\n"
            f"{temp}\n{indented}\n}}\n")
