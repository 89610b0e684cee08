"""The HTTP side of ``rain2avoid serve``: the page at ``/`` and the JSON API it uses.

``create_app(ServeSettings(...))`` returns a FastAPI application; its
lifespan starts the :class:`~.jobs.JobStore` workers and, at shutdown, stops
them and deletes every job file. Errors are JSON ``{"detail": "..."}``.

Uploads are refused before they are stored when the ``Content-Length`` is
above the limit, and while they stream when it is absent or wrong: the bytes
are counted as they arrive, and the parser spools the file to disk past 1 MB,
so no upload sits whole in memory.
"""

from __future__ import annotations

import shutil
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from ..io import ImageReadError, read_image
from ..sdrl import PRESETS
from .jobs import MEDIA_TYPES, Job, JobStore, QueueFull, safe_stem

__all__ = ["ServeSettings", "create_app"]

MB = 1024 * 1024
_DRAIN_BYTES = 64 * MB  # most bytes of a refused upload read (and dropped) so that the client sees the 413

# The page may only use what this server sends: no other host can add script, style or font.
_PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                "frame-ancestors 'none'")

_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/style.css": ("style.css", "text/css; charset=utf-8")}

_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "The rainy photo: PNG, JPEG, BMP, TIFF or WebP."},
        "preset": {"type": "string", "enum": list(PRESETS), "default": "fast"},
        "seed": {"type": "integer", "minimum": 0, "default": 0}}}}}}}


@dataclass(frozen=True)
class ServeSettings:
    """How the server runs (the ``rain2avoid serve`` flags).

    jobs: images trained at the same time. queue_size: most waiting jobs
    (more get 503). max_upload_bytes: largest request body. max_pixels:
    largest image. ttl: seconds a finished job is kept (> 0); keep: most
    finished jobs kept (>= 1). options: Settings overrides for every job
    (tests use a few ``steps``). temp_root: where the private job folder is made.
    """

    jobs: int = 1
    queue_size: int = 32
    max_upload_bytes: int = 50 * MB
    max_pixels: int | None = 50_000_000
    ttl: float = 3600.0
    keep: int = 100
    options: dict = field(default_factory=dict)
    temp_root: Path | None = None


class _TooLarge(Exception):
    """The request body passed the upload limit while it streamed in."""


def _counted(receive, limit: int):
    """Wrap an ASGI ``receive`` so that it raises _TooLarge once the body passes ``limit`` bytes."""
    seen = 0

    async def receive_counted():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
        return message

    return receive_counted


def _static_files() -> dict:
    folder = resources.files("rain2avoid.serve") / "static"
    return {path: ((folder / name).read_bytes(), media) for path, (name, media) in _STATIC.items()}


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The web application: the page, the API and its job store (``app.state.store``)."""
    settings = settings or ServeSettings()
    store = JobStore(workers=settings.jobs, queue_size=settings.queue_size, ttl=settings.ttl,
                     keep=settings.keep, max_pixels=settings.max_pixels, options=settings.options,
                     root=settings.temp_root)
    decoding = threading.BoundedSemaphore(2)  # full-size decodes checking uploads, at most two at once
    files = _static_files()
    too_large = f"the upload is larger than this server's limit of {settings.max_upload_bytes / MB:g} MiB"

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store.start()
        try:
            yield
        finally:
            await run_in_threadpool(store.close)

    app = FastAPI(title="rain2avoid", summary="Remove rain streaks from photos, on this machine.",
                  lifespan=lifespan, redoc_url=None)
    app.state.store = store
    app.state.settings = settings

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    def page(path: str):
        body, media = files[path]

        async def serve_file() -> Response:
            return Response(body, media_type=media, headers={"Content-Security-Policy": _PAGE_POLICY,
                                                             "Cache-Control": "no-cache",
                                                             "X-Content-Type-Options": "nosniff"})
        return serve_file

    for path in files:
        app.get(path, include_in_schema=False)(page(path))

    @app.get("/api/health", summary="Is the server up?")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/api/config", summary="Presets and limits (what the page offers)")
    async def config() -> dict:
        return {"presets": list(PRESETS), "default_preset": "fast",
                "max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels,
                "jobs": settings.jobs, "queue_size": settings.queue_size, "counts": store.counts()}

    @app.post("/api/derain", status_code=202, openapi_extra=_UPLOAD_BODY,
              summary="Upload a rainy photo; answers the new job's id",
              responses={400: {"description": "not a usable image or form"}, 413: {"description": "too large"},
                         415: {"description": "not an image, an unsupported format, or not multipart"},
                         503: {"description": "queue full; see Retry-After"}})
    async def submit(request: Request) -> JSONResponse:
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise HTTPException(415, "send multipart/form-data with the image in the field 'file'")
        header = request.headers.get("content-length")
        length = None if header is None else _whole_number(header)
        if header is not None and length is None:
            raise HTTPException(400, f"bad Content-Length {header[:40]!r}")
        if length is not None and length > settings.max_upload_bytes:
            if length <= settings.max_upload_bytes + _DRAIN_BYTES:
                await _discard_body(request.receive)
            raise HTTPException(413, too_large)
        if store.full():
            raise _busy(store.retry_after())
        job_id, folder = store.new_folder()
        try:
            name, preset, seed = await _receive(request, folder / "upload", settings.max_upload_bytes,
                                                too_large)
            seed = _checked(preset, seed)
            image_format, width, height = await run_in_threadpool(_check_image, folder / "upload",
                                                                  settings.max_pixels, decoding)
            job = store.submit(job_id, folder, name, image_format, width, height, preset, seed)
        except QueueFull as exc:
            store.discard(folder)
            raise _busy(exc.retry_after) from None
        except BaseException:
            store.discard(folder)
            raise
        return JSONResponse({"id": job.id}, status_code=202, headers={"Location": f"/api/jobs/{job.id}"})

    def _find(job_id: str) -> Job:
        job = store.get(job_id)
        if job is None:
            raise _unknown(job_id)
        return job

    @app.get("/api/jobs/{job_id}", summary="A job's status and training progress (0..1)")
    async def job_status(job_id: str) -> dict:
        return store.status(_find(job_id))

    @app.delete("/api/jobs/{job_id}", summary="Cancel a job, or delete a finished one's files; then forget it",
                responses={404: {"description": "unknown, or finished and expired"}})
    async def cancel(job_id: str) -> dict:
        status = await run_in_threadpool(store.cancel, job_id)   # deleting a large upload takes a moment
        if status is None:
            raise _unknown(job_id)
        return {"id": job_id, "cancelled": status in ("queued", "running")}

    def _finished_file(job_id: str, what: str) -> Job:
        job = _find(job_id)
        if job.status != "done":
            detail = job.error if job.status == "failed" else f"the job is {job.status}; poll /api/jobs/{job.id}"
            raise HTTPException(409, f"no {what}: {detail}")
        return job

    @app.get("/api/jobs/{job_id}/result", summary="The derained image, in the uploaded format",
             response_class=FileResponse, responses={409: {"description": "not done yet, or failed"}})
    async def result(job_id: str) -> FileResponse:
        job = _finished_file(job_id, "result")
        return FileResponse(job.result_path, media_type=MEDIA_TYPES[job.format], filename=job.download_name)

    @app.get("/api/jobs/{job_id}/mask", summary="The rain mask as PNG (graded 0-255; rain where > 10)",
             response_class=FileResponse, responses={409: {"description": "not done yet, or failed"}})
    async def mask(job_id: str) -> FileResponse:
        job = _finished_file(job_id, "mask")
        return FileResponse(job.mask_path, media_type="image/png", filename=f"{job.name}-mask.png",
                            content_disposition_type="inline")

    return app


def _unknown(job_id: str) -> HTTPException:
    return HTTPException(404, f"no job {job_id[:64]!r}: unknown, or finished and expired")


def _busy(retry_after: int) -> HTTPException:
    return HTTPException(503, f"the queue is full; try again in {retry_after} s",
                         headers={"Retry-After": str(retry_after)})


async def _receive(request: Request, target: Path, limit: int, too_large: str) -> tuple:
    """Stream the multipart body; save the field 'file' as ``target``; return (name, preset, seed)."""
    counted = Request(request.scope, _counted(request.receive, limit))
    try:
        async with counted.form(max_files=1, max_fields=8) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HTTPException(400, "no file: send the image in the multipart field 'file'")
            await run_in_threadpool(_save, upload, target)
            return safe_stem(upload.filename), form.get("preset") or "fast", form.get("seed")
    except _TooLarge:
        await _discard_body(request.receive)
        raise HTTPException(413, too_large) from None
    except ClientDisconnect:
        raise HTTPException(400, "the upload was interrupted") from None


async def _discard_body(receive, seconds: float = 10.0, idle: float = 1.0) -> None:
    """Read and drop the rest of a refused body: up to _DRAIN_BYTES, ``seconds`` in all, ``idle`` per read.

    Simple clients (urllib, requests) read the answer only once they have sent
    everything; if the server closes first they see "connection reset" rather
    than the 413. Like a web server's lingering close, this lets them finish.
    """
    dropped = 0
    with anyio.move_on_after(seconds):
        while dropped <= _DRAIN_BYTES:
            with anyio.move_on_after(idle) as waiting:
                message = await receive()
            if waiting.cancelled_caught or message["type"] != "http.request" or not message.get("more_body"):
                return
            dropped += len(message.get("body", b""))


def _save(upload: UploadFile, target: Path) -> None:
    upload.file.seek(0)
    with open(target, "xb") as out:
        shutil.copyfileobj(upload.file, out, 1024 * 1024)


def _whole_number(text: str) -> int | None:
    """``text`` as an int when it is ASCII digits 0-9 only (20 at most; spaces around allowed), else None.

    Not ``str.isdigit``: it also accepts superscripts such as '²' (which ``int`` refuses) and other
    scripts' digits (which ``int`` reads).
    """
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None


def _checked(preset, seed) -> int | None:
    """The seed as an int (or None); HTTP 400 for a bad preset or seed."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise HTTPException(400, f"unknown preset {str(preset)[:40]!r}; choose one of {', '.join(PRESETS)}")
    if seed in (None, ""):
        return None
    number = _whole_number(seed) if isinstance(seed, str) else None
    if number is None or number >= 2 ** 32:
        raise HTTPException(400, f"seed must be a whole number from 0 to {2 ** 32 - 1}")
    return number


def _check_image(path: Path, max_pixels: int | None, decoding: threading.BoundedSemaphore) -> tuple:
    """(format, width, height) of a saved upload; HTTP 415/413/400 saying why it is unusable."""
    try:
        with decoding:
            pixels, meta = read_image(path, max_pixels=max_pixels, with_meta=True)
    except ImageReadError as exc:
        if exc.reason.startswith("not an image"):
            raise HTTPException(415, f"the upload is {exc.reason}") from None
        if exc.reason.startswith("unsupported image format"):
            raise HTTPException(415, f"the upload has an {exc.reason}") from None
        if "above the limit" in exc.reason:
            raise HTTPException(413, f"the upload's {exc.reason.split(' (raise')[0]}") from None
        raise HTTPException(400, f"cannot read the upload: {exc.reason}") from None
    return meta.format, pixels.shape[1], pixels.shape[0]
