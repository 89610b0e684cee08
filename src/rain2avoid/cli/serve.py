"""`rain2avoid serve`: the web page and JSON API on this machine (needs the extra `[web]`)."""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import os
import socket

import click

_MISSING = 'rain2avoid serve needs FastAPI, uvicorn and python-multipart: pip install "rain2avoid[web]"'


def _check_web_extra() -> None:
    for module in ("fastapi", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            raise click.ClickException(_MISSING) from None
    if not any(importlib.util.find_spec(m) for m in ("python_multipart", "multipart")):
        raise click.ClickException(_MISSING)


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket, so a busy port is a clear error and --port 0 gets a free port to print."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as e:
        raise click.UsageError(f"--host {host}: {e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e} "
                                   f"(is another server using it? choose another --port)") from None
    sock.set_inheritable(True)
    return sock


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. The default is this machine only; 0.0.0.0 opens it to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port (0: any free port).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Photos trained at the same time; each gets an equal share of the CPU cores.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Torch threads per photo [default: CPU cores / --jobs]. 1 is often faster on a busy machine.")
@click.option("--queue", "queue_size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Most photos waiting; beyond it uploads get 503 with Retry-After.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=50, show_default=True,
              help="Largest upload in MiB (1 MiB = 1,048,576 bytes), refused (413) before it is read whole.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=50_000_000, show_default=True,
              help="Refuse images with more pixels than this.")
@click.option("--keep-minutes", type=click.FloatRange(min=0, min_open=True), default=60, show_default=True,
              help="Delete finished jobs and their files after this long.")
@click.option("--keep-jobs", type=click.IntRange(min=1), default=100, show_default=True,
              help="Keep at most this many finished jobs (the oldest go first; at least 1).")
@click.option("--debug", is_flag=True, help="Log every request, and full tracebacks.")
def serve(host, port, jobs, threads, queue_size, max_upload_mb, max_pixels, keep_minutes, keep_jobs, debug):
    """Serve a web page and a JSON API for deraining photos on this machine.

    Open the printed URL, drop photos on the page, watch them train, compare
    and download. Programs use the same API: POST /api/derain, then
    GET /api/jobs/ID until done, then GET /api/jobs/ID/result; DELETE
    /api/jobs/ID cancels a job or deletes its files (docs at /docs).
    Ctrl-C stops it and deletes every uploaded and derained file.

    \b
    Examples:
      rain2avoid serve                      # http://127.0.0.1:8000/
      rain2avoid serve --port 9000 --jobs 2
      curl -F file=@rainy.jpg http://127.0.0.1:8000/api/derain
    """
    _check_web_extra()
    import torch
    import uvicorn

    from ..serve import ServeSettings, create_app

    settings = ServeSettings(jobs=jobs, queue_size=queue_size, max_upload_bytes=int(max_upload_mb * 1024 * 1024),
                             max_pixels=max_pixels, ttl=keep_minutes * 60, keep=keep_jobs)
    sock = _bind(host, port)
    torch.set_num_threads(threads or max(1, _cores() // jobs))
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if not _is_local(host):
        click.echo(f"warning: --host {host} makes this server reachable from other machines; it has no "
                   f"password, so anyone who can reach it can upload photos and use its CPU", err=True)
    if not debug:   # a malformed upload gets its 400; the multipart parser's own log line is noise here
        logging.getLogger("python_multipart").setLevel(logging.ERROR)
    app = create_app(settings)
    config = uvicorn.Config(app, log_level="info" if debug else "warning", access_log=debug,
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    url = f"http://{shown}:{bound_port}/"
    if host in ("0.0.0.0", "::"):
        url += f" (on this machine: http://127.0.0.1:{bound_port}/)"
    click.echo(f"rain2avoid serve: {url} (API docs at /docs; Ctrl-C stops)")
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled, after a clean shutdown
        pass
    finally:
        sock.close()
    if not server.started:
        raise click.ClickException("the server did not start (run again with --debug to see why)")
    click.echo("rain2avoid serve: stopped")
