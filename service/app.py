"""The FastAPI application: ``create_app(settings)`` wires storage, scheduler and routes."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import Depends, FastAPI, Request, Response
from fastapi_offline import FastAPIOffline
from sqlalchemy.orm import sessionmaker

from search.checks import warm_up
from service.api.admission import Admission
from service.api.deps import require_caller
from service.api.errors import API_ERRORS, install_handlers
from service.api.limits import BodyLimit
from service.api.routes import (
    algorithms,
    catalog,
    datasets,
    events,
    external,
    jobs,
    keys,
    quotas,
    reports,
    studies,
    trials,
)
from service.api.streams import StreamSlots
from service.config import Settings
from service.reports.metrics import CONTENT_TYPE, render
from service.scheduling.scheduler import Scheduler
from service.store.engine import make_engine, migrate
from service.store.keys import ensure_admin_key
from service.store.quotas import Quota
from service.store.storage import make_storage

log = logging.getLogger(__name__)


DESCRIPTION = """Hyperparameter and architecture search on Ray; results in Optuna's schema.

**Authentication.** Every `/api/v1` route needs an API key: `Authorization: Bearer <key>` (or
`X-API-Key: <key>`). The first start writes an admin key to `<TUNEFORGE_DATA_DIR>/admin.key`;
`tuneforge keys create --tenant NAME` makes more (admin routes: `/api/v1/keys`,
`/api/v1/tenants/{tenant}/quota`). A key sees its tenant's studies and datasets only. In this
page, **Authorize** takes the key once for every request you try."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service. With ``settings.run_scheduler`` it also runs the trial scheduler."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Threads for every admitted request's next step, and some to spare (see Admission).
        threads = anyio.to_thread.current_default_thread_limiter()
        threads.total_tokens = max(threads.total_tokens, settings.max_concurrent_requests + 8)
        engine = make_engine(settings.db_url)
        migrate(engine)
        app.state.settings = settings
        app.state.sessionmaker = sessionmaker(engine, expire_on_commit=False)
        if settings.auth:
            with app.state.sessionmaker() as session:
                ensure_admin_key(session, settings.paths)
        app.state.storage = make_storage(settings.db_url)
        app.state.streams = StreamSlots(settings.max_streams_per_key)
        app.state.scheduler = None
        if settings.run_scheduler:
            base = f"http://{settings.host}:{settings.port}"
            app.state.scheduler = Scheduler(
                settings,
                app.state.sessionmaker,
                app.state.storage,
                announce=f"API {base}/api/v1, docs {base}/docs, ",
            )
            app.state.scheduler.start()
        warm_up()  # beside the scheduler's start: before the first request, not in it
        if not settings.run_scheduler:
            log.info("tuneforge ready: API on port %s, no scheduler in this process", settings.port)
        try:
            yield
        finally:
            if app.state.scheduler is not None:
                app.state.scheduler.shutdown()
            app.state.storage.remove_session()
            engine.dispose()

    # Swagger UI and ReDoc from the package's own copies: the docs work with no internet.
    app = FastAPIOffline(
        title="tuneforge",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_handlers(app)

    app.add_middleware(Admission, limit=settings.max_concurrent_requests)
    # Uploads get their own, larger limit; every other body stays small.
    app.add_middleware(
        BodyLimit,
        limit=settings.max_request_bytes,
        overrides={"/api/v1/datasets": settings.max_upload_bytes},
    )

    @app.get("/healthz", tags=["health"])
    def healthz(request: Request) -> dict[str, str]:
        scheduler: Scheduler | None = request.app.state.scheduler
        return {"status": "ok", "scheduler": scheduler.state if scheduler else "off"}

    # Prometheus text format, no key (scrapers carry none): aggregates only, no names.
    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        scheduler: Scheduler | None = request.app.state.scheduler
        registry = scheduler.metrics.registry if scheduler else None
        quota = Quota(**request.app.state.settings.quota_defaults())
        body = render(request.app.state.sessionmaker, registry, quota)
        return Response(body, media_type=CONTENT_TYPE)

    # Every API route needs a key (healthz does not); each route then scopes to its tenant.
    routers = (
        jobs,
        studies,
        trials,
        external,
        events,
        reports,
        datasets,
        algorithms,
        catalog,
        keys,
        quotas,
    )
    for module in routers:
        app.include_router(
            module.router,
            prefix="/api/v1",
            dependencies=[Depends(require_caller)],
            responses=API_ERRORS,
        )
    return app
