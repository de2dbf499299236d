"""The `hangar` command: `hangar serve [--host H] [--port P]`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from hangar.page import make_server


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hangar", description="The hangar package's page.")
    commands = top.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the page until interrupted")
    serve.add_argument("--host", default=os.environ.get("HANGAR_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("HANGAR_PORT", "8000")))
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the page; prints `serving on http://HOST:PORT/` once it accepts connections."""
    args = parser().parse_args(argv)
    server = make_server(args.host, args.port)
    host, port = server.server_address[:2]
    print(f"serving on http://{host!s}:{port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
