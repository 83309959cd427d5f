"""`ecocluster token create|revoke|list`: the API's bearer tokens (stored hashed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ecocluster.api.deps import TOKENS_FILE
from ecocluster.api.tokens import ROLES, TokenStore
from ecocluster.core.settings import load_settings

__all__ = ["register"]

_out = Console(soft_wrap=True)
_err = Console(stderr=True, soft_wrap=True)
token_app = typer.Typer(help="API tokens: create, revoke, list.", no_args_is_help=True)


def _store(data_dir: Path | None) -> TokenStore:
    if data_dir is None:
        try:
            data_dir = Path(load_settings().data_dir)
        except ValueError as exc:
            _err.print(f"settings: {exc}", markup=False)
            raise typer.Exit(1) from None
    return TokenStore(data_dir / TOKENS_FILE)


DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Default: ECOCLUSTER_DATA_DIR (data).")
]


@token_app.command("create")
def create(
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
    name: Annotated[str, typer.Option(help="Who holds it (shown in audit trails).")],
    org: Annotated[str | None, typer.Option(help="Organisation (facility managers).")] = None,
    contact: Annotated[
        str | None, typer.Option(help="Contact id from the cluster file, for acks.")
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a token; it is printed once and only its hash is stored."""
    store = _store(data_dir)
    try:
        issued = store.create(role=role, org=org, name=name, contact=contact)
    except ValueError as exc:
        _err.print(f"token create: {exc}", markup=False)
        raise typer.Exit(2) from None
    finally:
        store.close()
    info = issued.info
    scope = f"organisation {info.org}" if info.org else "the whole territory"
    _err.print(f"token {info.id} for {escape(info.name)}: {info.role}, {scope}", markup=False)
    _err.print("store it now: it is not shown again", markup=False)
    print(issued.token)


@token_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `token list`).")],
    data_dir: DataDir = None,
) -> None:
    """Revoke a token by id; requests with it are refused within seconds."""
    store = _store(data_dir)
    try:
        done = store.revoke(token_id)
    finally:
        store.close()
    if not done:
        _err.print(f"no active token with id {token_id!r}", markup=False)
        raise typer.Exit(1)
    _out.print(f"revoked {token_id}", markup=False)


@token_app.command("list")
def list_tokens(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    data_dir: DataDir = None,
) -> None:
    """List tokens (ids, roles, holders; never the tokens themselves)."""
    store = _store(data_dir)
    try:
        tokens = store.list(include_revoked=all_)
    finally:
        store.close()
    _out.print("id\trole\torg\tname\tcontact\tcreated\trevoked", markup=False)
    for t in tokens:
        fields = [
            t.id,
            t.role,
            t.org or "-",
            t.name,
            t.contact or "-",
            _when(t.created_ms),
            _when(t.revoked_ms) if t.revoked_ms else "",
        ]
        _out.print("\t".join(fields), markup=False, highlight=False)


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
