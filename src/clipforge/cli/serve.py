"""``clipforge serve``: the search API and web page over one index (uvicorn)."""

from __future__ import annotations

import argparse
import ipaddress
import os

EXAMPLE = """examples:
  clipforge serve --index idx                         # http://127.0.0.1:8000, API docs at /docs
  clipforge serve --index idx --host 0.0.0.0 --api-key "$KEY" --allowed-hosts search.example.org
  curl -s localhost:8000/search -H 'content-type: application/json' -d '{"text": "a red apple"}'

Behind a reverse proxy, limits and every option: docs/deploy.md."""


def _default(name: str):
    from dataclasses import fields

    from ..search.service import ServerConfig
    return next(f.default for f in fields(ServerConfig) if f.name == name)


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
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLE
    parser.add_argument("--index", required=True, help="index directory written by `index`")
    parser.add_argument("--host", help="interface to listen on; anything but loopback prints a "
                        f"warning: there is no TLS (default: {_default('host')})")
    parser.add_argument("--port", type=port_number, help=f"TCP port (default: {_default('port')})")
    parser.add_argument("--model", help="override the model named in the index "
                        "(default: the index's own)")
    parser.add_argument("--max-upload-mb", type=positive(float), metavar="MB",
                        help="largest upload (default: "
                        f"{_default('max_upload_bytes') / 2**20:g})")
    parser.add_argument("--max-image-pixels", type=positive(int), metavar="N",
                        help="largest uploaded image, checked from its header before decoding "
                        f"(default: {_default('max_image_pixels')})")
    parser.add_argument("--uploads-in-flight", type=positive(int), metavar="N",
                        help="uploads decoded and searched at once; "
                        f"{_default('uploads_waiting')} more wait, the rest get 429 "
                        f"(default: {_default('uploads_in_flight')})")
    parser.add_argument("--request-timeout", type=positive(float), metavar="SECONDS",
                        help="time a client has to send a whole request before 408 "
                        f"(default: {_default('request_timeout'):g})")
    parser.add_argument("--api-key", help="require this key (X-API-Key or Authorization: Bearer "
                        "header) on every route but /healthz (default: $CLIPFORGE_API_KEY, "
                        "else none)")
    parser.add_argument("--allowed-hosts", metavar="HOST[,HOST]",
                        help="answer only requests whose Host header is one of these, e.g. "
                        "localhost,127.0.0.1 (against DNS rebinding; default: any)")
    parser.add_argument("--threads", type=positive(int),
                        help="torch threads for query encoding (default: min(4, CPUs))")


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
        return (f"warning: listening on {host}: requests need the API key, but travel without "
                "TLS; put a reverse proxy with HTTPS in front (docs/deploy.md)")
    return (f"warning: listening on {host} with no authentication: anyone who can reach this "
            "port can search the index and read its images; pass --api-key or put a reverse "
            "proxy in front (docs/deploy.md)")


def config_from_args(args: argparse.Namespace):
    from ..search.service import ServerConfig
    given = {"model": args.model, "host": args.host, "port": args.port,
             "max_image_pixels": args.max_image_pixels,
             "uploads_in_flight": args.uploads_in_flight,
             "request_timeout": args.request_timeout,
             "api_key": args.api_key or os.environ.get("CLIPFORGE_API_KEY") or None,
             "torch_threads": args.threads or min(4, os.cpu_count() or 1)}
    if args.max_upload_mb is not None:
        given["max_upload_bytes"] = int(args.max_upload_mb * 2**20)
    if args.allowed_hosts:
        given["allowed_hosts"] = [h.strip() for h in args.allowed_hosts.split(",") if h.strip()]
    return ServerConfig(**{k: v for k, v in given.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    import sys

    from ..search.server import create_app
    from ..search.serving import run_server
    config = config_from_args(args)
    warning = exposure_warning(config.host, config.api_key)
    app = create_app(args.index, config)
    if warning:
        print(warning, file=sys.stderr)
    print(f"serving {args.index} on http://{config.host}:{config.port} (API docs at /docs)")
    run_server(app, config)
    return 0
