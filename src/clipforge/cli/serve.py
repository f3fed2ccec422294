"""``clipforge serve``: the search API and web page over one index (uvicorn)."""

from __future__ import annotations

import argparse
import ipaddress
import os

from .defaults import given, shows_default

CONFIG = "clipforge.search.service:ServerConfig"
DESCRIPTION = """Serve an index built by `clipforge index`: the search API (POST /search, GET
/items/ID, /images/…, /healthz, /metrics; OpenAPI docs at /docs), a search page at /, and
clip-retrieval's API (POST /knn-service, GET /indices-list, POST /metadata) over one or several
named indexes. Listens on this machine only unless --host says otherwise; docs/deploy.md covers
the limits, the API key and running behind a reverse proxy."""
EXAMPLES = """examples:
  clipforge serve --index idx                         # http://127.0.0.1:8000, API docs at /docs
  clipforge serve --index idx --host 0.0.0.0 --api-key "$KEY" --allowed-hosts search.example.org
  curl -s localhost:8000/search -H 'content-type: application/json' -d '{"text": "a red apple"}'
  clipforge serve --index laion=idx_a --index coco=idx_b --image-url-folder ~/queries
  curl -s localhost:8000/knn-service -d '{"text": "a cat", "indice_name": "coco"}'"""


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a TCP port (1–65535)")
    return value


def positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    if parser.epilog is None:  # a cli/main.py that does not read EXAMPLES yet
        parser.formatter_class, parser.epilog = argparse.RawDescriptionHelpFormatter, EXAMPLES
    parser.add_argument(
        "--index",
        required=True,
        action="append",
        type=named_index,
        metavar="[NAME=]DIR",
        help="directory written by `clipforge index`; repeat as NAME=DIR to serve several, "
        "chosen by indice_name on /knn-service (a NAME may hold an image and a text index, "
        "chosen by modality; the first also answers /search; a DIR without NAME= is named "
        "after its folder)",
    )
    parser.add_argument(
        "--image-url-folder",
        action="append",
        metavar="DIR",
        help="folder whose files /knn-service may read through a file:// image_url "
        "(repeatable; default: none, every image_url refused; other schemes always are)",
    )
    flags = [
        ("--host", {}, "interface to listen on; anything but loopback prints a warning", "host"),
        ("--port", {"type": port_number}, "TCP port", "port"),
        (
            "--max-image-pixels",
            {"type": positive(int), "metavar": "N"},
            "largest uploaded image, read from its header before decoding",
            "max_image_pixels",
        ),
        (
            "--uploads-in-flight",
            {"type": positive(int), "metavar": "N"},
            "uploads decoded and searched at once; a few more wait, the rest get 429",
            "uploads_in_flight",
        ),
        (
            "--request-timeout",
            {"type": positive(float), "metavar": "SECONDS"},
            "time a client has to send a whole request before 408",
            "request_timeout",
        ),
    ]
    for flag, options, help_text, field in flags:
        shows_default(parser.add_argument(flag, help=help_text, **options), f"{CONFIG}.{field}")
    parser.add_argument(
        "--model",
        help="use this model instead of the one named in the index "
        "(same embedding dimension; default: the index's own)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=positive(float),
        metavar="MB",
        help="largest upload in MiB (default: 10, ServerConfig.max_upload_bytes)",
    )
    parser.add_argument(
        "--api-key",
        help="require this key (X-API-Key or Authorization: Bearer "
        "header) on every route but /healthz (default: $CLIPFORGE_API_KEY, "
        "else none)",
    )
    parser.add_argument(
        "--allowed-hosts",
        metavar="HOST[,HOST]",
        help="answer only requests whose Host header is one of these, e.g. "
        "localhost,127.0.0.1 (against DNS rebinding; default: any)",
    )
    parser.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="a web page's origin that may call the API from a browser, e.g. "
        "http://localhost:1235 for clip-retrieval's front (repeatable; default: none)",
    )
    parser.add_argument(
        "--threads",
        type=positive(int),
        help="torch threads for query encoding (default: min(4, CPUs))",
    )


def named_index(text: str) -> tuple[str | None, str]:
    """``NAME=DIR`` → (NAME, DIR); a plain ``DIR`` (or an existing path with ``=`` in it) →
    (None, DIR)."""
    from pathlib import Path

    from ..search.indices import index_name

    name, equals, directory = text.partition("=")
    if not equals or Path(text).exists():
        return None, text
    try:
        return index_name(name), directory
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def index_dirs(given_indexes: list[tuple[str | None, str]]) -> list[tuple[str, str]]:
    """The ``--index`` values as (name, directory), in order, a plain DIR named after its folder
    (a name given twice for one modality is refused when the indexes open)."""
    from ..search.indices import default_name

    return [(name or default_name(directory), directory) for name, directory in given_indexes]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, api_key: str | None) -> str | None:
    """The warning ``serve`` prints when it listens beyond this machine."""
    if is_loopback(host):
        return None
    if api_key:
        return (
            f"warning: listening on {host}: requests need the API key, but travel without "
            "TLS; put a reverse proxy with HTTPS in front (docs/deploy.md)"
        )
    return (
        f"warning: listening on {host} with no authentication: anyone who can reach this "
        "port can search the index and read its images; pass --api-key or put a reverse "
        "proxy in front (docs/deploy.md)"
    )


def config_from_args(args: argparse.Namespace):
    from ..search.service import ServerConfig

    allowed = [h.strip() for h in (args.allowed_hosts or "").split(",") if h.strip()]
    return ServerConfig(
        **given(
            model=args.model,
            host=args.host,
            port=args.port,
            max_upload_bytes=int(args.max_upload_mb * 2**20) if args.max_upload_mb else None,
            max_image_pixels=args.max_image_pixels,
            uploads_in_flight=args.uploads_in_flight,
            request_timeout=args.request_timeout,
            api_key=args.api_key or os.environ.get("CLIPFORGE_API_KEY") or None,
            allowed_hosts=allowed or None,
            torch_threads=args.threads or min(4, os.cpu_count() or 1),
            image_url_folders=tuple(args.image_url_folder or ()) or None,
            cors_origins=args.cors_origin,
        )
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from ..search.server import create_app
    from ..search.serving import run_server

    config = config_from_args(args)
    warning = exposure_warning(config.host, config.api_key)
    indexes = index_dirs(args.index)
    app = create_app(indexes, config)
    if warning:
        print(warning, file=sys.stderr)
    served = ", ".join(f"{name}={directory}" for name, directory in indexes)
    print(f"serving {served} on http://{config.host}:{config.port} (API docs at /docs)")
    run_server(app, config)
    return 0
