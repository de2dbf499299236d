"""Everything one running app holds (engine, services, limiters), built in the app's lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from hangar.db.engine import create_engine, create_sessionmaker
from hangar.db.migrate import check_current
from hangar.metrics import Metrics
from hangar.providers.base import Provider
from hangar.providers.registry import build_providers
from hangar.service.events import EventBus
from hangar.service.machines import MachineService
from hangar.service.observer import Observer
from hangar.service.ratelimit import SlidingWindow
from hangar.service.users import UserService
from hangar.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Hangar:
    settings: Settings
    engine: AsyncEngine
    providers: dict[str, Provider]
    machines: MachineService
    users: UserService
    metrics: Metrics
    logins_by_user: SlidingWindow
    logins_by_address: SlidingWindow
    observer: Observer

    @classmethod
    async def start(cls, settings: Settings, metrics: Metrics) -> Hangar:
        """Connect, refuse an unmigrated database, build providers and services."""
        settings.ensure_data_dir()
        engine = create_engine(settings.database_url, settings.database_busy_timeout_seconds)
        try:
            await check_current(engine)
            providers = build_providers(settings)
        except BaseException:
            await engine.dispose()
            raise
        sessionmaker = create_sessionmaker(engine)
        machines = MachineService(sessionmaker, providers, EventBus(), metrics)
        users = UserService(
            sessionmaker,
            settings.resolved_secret_key(),
            timedelta(hours=settings.session_hours),
        )
        hangar = cls(
            settings=settings,
            engine=engine,
            providers=providers,
            machines=machines,
            users=users,
            metrics=metrics,
            logins_by_user=SlidingWindow(
                settings.login_attempts_per_user, settings.login_window_seconds
            ),
            logins_by_address=SlidingWindow(
                settings.login_attempts_per_address, settings.login_window_seconds
            ),
            observer=Observer(sessionmaker, machines),
        )
        try:
            interrupted = await machines.recover_interrupted()
            if interrupted:
                log.warning("marked %d interrupted operation(s) as failed", interrupted)
            if settings.admin_password and await users.ensure_admin(settings.admin_password):
                log.info("created user 'admin' from HANGAR_ADMIN_PASSWORD")
            # Only now: a machine a crash left `starting` is recover_interrupted's to mark.
            hangar.observer.start(settings.observer_interval_seconds)
        except BaseException:
            await hangar.stop()
            raise
        return hangar

    async def stop(self) -> None:
        try:
            await self.observer.stop()
            await self.machines.close(self.settings.shutdown_grace_seconds)
            for provider in self.providers.values():
                await provider.close()
        finally:
            await self.engine.dispose()


def get_hangar(request: Request) -> Hangar:
    hangar: Hangar = request.app.state.hangar
    return hangar


HangarDep = Annotated[Hangar, Depends(get_hangar)]
