"""The `hangar` command. Other modules add command groups by appending to `SUBAPPS`
(name, typer app) and commands by appending to `COMMANDS`; `main()` wires them in."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from hangar import cli_e2b, cli_proxmox, cli_qemu, cli_support
from hangar.db import migrate
from hangar.db.engine import create_engine, create_sessionmaker
from hangar.images.registry import default_data_dir
from hangar.providers.registry import build_providers
from hangar.service.errors import HangarError
from hangar.service.users import Role, UserService
from hangar.settings import Settings

T = TypeVar("T")

app = typer.Typer(help="hangar: a machine manager (FastAPI service of the Hangar template).")
tokens_app = typer.Typer(help="API tokens (hgr_...) for scripts.")

DEV_PASSWORD_FILE = "admin_password"  # noqa: S105 -- a file name


def _with_users(settings: Settings, work: Callable[[UserService], Awaitable[T]]) -> T:
    """Run `work` with a UserService on a migrated database; errors become exit code 1."""
    reason = migrate.problem(
        migrate.current_revision_sync(settings.database_url), settings.database_url
    )
    if reason is not None:
        raise cli_support.fail(reason)

    async def run() -> T:
        engine = create_engine(settings.database_url)
        try:
            users = UserService(create_sessionmaker(engine), settings.resolved_secret_key())
            return await work(users)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except HangarError as exc:
        raise cli_support.fail(exc.message) from exc


def _check_providers(settings: Settings) -> None:
    """Build the enabled providers once, so a missing or wrong provider setting ends the command
    with its one line before the server starts (and not as a traceback in its startup)."""
    try:
        providers = build_providers(settings)
    except ValueError as exc:
        raise cli_support.fail(str(exc)) from None

    async def close() -> None:
        for provider in providers.values():
            await provider.close()

    asyncio.run(close())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    migrate_first: Annotated[
        bool, typer.Option("--migrate", help="Apply pending migrations before serving.")
    ] = False,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Serve the API and the web UI with uvicorn."""
    import uvicorn

    settings = cli_support.settings()
    settings.ensure_data_dir()
    if migrate_first:
        migrate.upgrade(settings.database_url)
    reason = migrate.problem(
        migrate.current_revision_sync(settings.database_url), settings.database_url
    )
    if reason is not None:
        raise cli_support.fail(reason + " (or pass --migrate)")
    _check_providers(settings)
    if reload:
        # With reload uvicorn imports the factory in a child process, which reads HANGAR_* again.
        package_dir = str(Path(__file__).parent)  # not the whole repo: only our code reloads
        uvicorn.run(
            "hangar.api.app:create_app",
            factory=True,
            host=host,
            port=port,
            reload=True,
            reload_dirs=[package_dir],
        )
        return
    from hangar.api.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port)


@app.command("migrate")
def migrate_command(
    revision: Annotated[str, typer.Option(help="Target revision (default: newest).")] = "head",
) -> None:
    """Apply the database migrations (to --revision: head, base or an id; older ones downgrade)."""
    settings = cli_support.settings()
    settings.ensure_data_dir()
    try:
        current = migrate.migrate_to(settings.database_url, revision)
    except ValueError as exc:
        raise cli_support.fail(str(exc)) from exc
    typer.echo(f"database is at revision {current or 'base (empty)'}")


@app.command("create-user")
def create_user(
    username: str,
    role: Annotated[Role, typer.Option(help="admin: everything; viewer: reads only.")] = Role.ADMIN,
    password: Annotated[
        str | None,
        typer.Option(help="The password (omit to be prompted).", show_default=False),
    ] = None,
) -> None:
    """Create a user (the first admin, usually)."""
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    assert password is not None
    chosen = password
    user = _with_users(
        cli_support.settings(), lambda users: users.create_user(username, chosen, role)
    )
    typer.echo(f"created {user.role} {user.username!r}")


@tokens_app.command("create")
def tokens_create(
    username: str,
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
) -> None:
    """Create an API token for USERNAME and print its secret (shown once)."""

    async def work(users: UserService) -> str:
        user = await users.get_user(username)
        _token, secret = await users.create_token(user.id, name)
        return secret

    typer.echo(_with_users(cli_support.settings(), work))


@tokens_app.command("list")
def tokens_list(
    username: Annotated[str | None, typer.Argument(help="Only this user's tokens.")] = None,
) -> None:
    """List API tokens (id, user, name, created, last used, revoked)."""

    async def work(users: UserService) -> list[str]:
        user_id = (await users.get_user(username)).id if username else None
        tokens = await users.list_tokens(user_id)
        return [
            "\t".join(
                [
                    t.id,
                    t.name,
                    t.created_at.isoformat(timespec="seconds"),
                    t.last_used_at.isoformat(timespec="seconds") if t.last_used_at else "-",
                    f"revoked {t.revoked_at.isoformat(timespec='seconds')}"
                    if t.revoked_at
                    else "active",
                ]
            )
            for t in tokens
        ]

    lines = _with_users(cli_support.settings(), work)
    typer.echo("\n".join(lines) if lines else "no tokens")


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token by id; it stops working at once."""
    token = _with_users(cli_support.settings(), lambda users: users.revoke_token(token_id))
    typer.echo(f"revoked token {token.id} ({token.name})")


def ensure_dev_admin(settings: Settings) -> tuple[str, str | None]:
    """Migrate, and create `admin` when there is no user yet. Returns the username and the
    password to show: HANGAR_ADMIN_PASSWORD, else one generated once and kept in the data dir
    (None when users existed before and no password was stored)."""
    settings.ensure_data_dir()
    migrate.upgrade(settings.database_url)
    password_file = settings.data_dir / DEV_PASSWORD_FILE

    async def work(users: UserService) -> str | None:
        if settings.admin_password is not None:
            await users.ensure_admin(settings.admin_password)
            return settings.admin_password
        if await users.count_users():
            return (
                password_file.read_text(encoding="utf-8").strip()
                if password_file.exists()
                else None
            )
        password = secrets.token_urlsafe(12)
        await users.create_user("admin", password, Role.ADMIN)
        password_file.touch(mode=0o600)
        password_file.write_text(password, encoding="utf-8")
        return password

    return "admin", _with_users(settings, work)


@app.command("dev-setup", hidden=True)
def dev_setup() -> None:
    """Prepare a development data dir (used by `invoke dev`): migrate and ensure an admin."""
    settings = cli_support.settings()
    username, password = ensure_dev_admin(settings)
    typer.echo(f"data dir: {settings.data_dir}")
    shown = password if password is not None else "(unchanged; see your own notes)"
    typer.echo(f"login:    {username} / {shown}")


@app.command()
def doctor(
    data_dir: cli_qemu.DataDir = None,
    probe: Annotated[bool, typer.Option(help="Probe the QEMU accelerator again.")] = False,
) -> None:
    """Check the host and the providers: QEMU (tools, version, accelerator, images), and Proxmox
    VE (version, node, storage, token privileges) and E2B (the key) when enabled or configured."""
    settings = cli_support.settings()
    typer.secho("QEMU", bold=True)
    problems = cli_qemu.check_qemu(data_dir or default_data_dir(), probe)
    if "proxmox" in settings.providers or settings.proxmox_url:
        typer.secho("Proxmox VE", bold=True)
        problems += cli_proxmox.doctor_proxmox(settings)
    else:
        typer.echo("Proxmox VE: not configured (HANGAR_PROVIDERS, HANGAR_PROXMOX_URL)")
    typer.secho("E2B", bold=True)
    problems += cli_e2b.doctor_e2b(settings)
    if problems:
        raise cli_support.fail(f"doctor: {problems} problem(s), see the lines above")
    typer.echo("doctor: everything checked is fine")


# Extension points: another module appends ("image", image_app) or a plain command function.
SUBAPPS: list[tuple[str, typer.Typer]] = [
    ("tokens", tokens_app),
    ("image", cli_qemu.image_app),
    ("proxmox", cli_proxmox.proxmox_app),
    ("e2b", cli_e2b.e2b_app),
]
COMMANDS: list[Callable[..., object]] = []


def build() -> typer.Typer:
    """The full command tree (sub-apps and commands registered by other modules included)."""
    for name, sub in SUBAPPS:
        if not any(group.name == name for group in app.registered_groups):
            app.add_typer(sub, name=name)
    for command in COMMANDS:
        if not any(c.callback is command for c in app.registered_commands):
            app.command()(command)
    return app


def main() -> None:
    build()()
