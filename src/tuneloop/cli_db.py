"""``tuneloop db``: set up the PostgreSQL production store (roles, schemas, grants)."""

from __future__ import annotations

from typing import Annotated

import typer

from tuneloop import render
from tuneloop.cli_options import JsonOpt, WorkspaceOpt
from tuneloop.errors import ConfigError, needs_extra
from tuneloop.workspace import find_workspace

# Each command imports the code it runs inside itself (the CLI's start-up time): `tuneloop --help`
# and every command start without loading torch, MLflow, FastAPI or pyarrow.

db_app = typer.Typer(help="The PostgreSQL store: roles, schemas and grants.")


@db_app.command("init")
def init(
    admin: Annotated[
        str,
        typer.Option(
            "--admin",
            help="libpq conninfo of an administrator (CREATEROLE, owner of the database); "
            "the password from ~/.pgpass or PGPASSWORD",
        ),
    ],
    workspace: WorkspaceOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create the stage roles, the stores' schemas, their triggers and grants (idempotent)."""
    with needs_extra("postgres", "tuneloop db"):
        from tuneloop.storage.setup import init_database  # psycopg: the [postgres] extra

    ws = find_workspace(workspace)
    cfg = ws.config.storage
    if cfg.backend != "postgres":
        raise ConfigError(
            f"{ws.config_path}: [storage] backend is {cfg.backend!r}; set backend = "
            "'postgres' and postgres = '<conninfo>' first"
        )
    roles = init_database(admin, cfg.role_prefix)
    if json:
        render.emit_json({"roles": roles, "schemas": ["train", "evalstore", "serving", "mlflow"]})
        return
    render.out.print(f"roles {', '.join(roles)}: schemas train, evalstore, serving, mlflow ready")
