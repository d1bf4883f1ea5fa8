"""Model versions, their lineage, and the aliases that serving follows, over MLflow's registry.

Why MLflow: it is the registry teams already run (a tracking server in production, one SQLite
file in the embedded default), so tuneloop adds only what it needs on top:

* lineage as version tags, so any served adapter can be traced to its base, data and code;
* a sha256 manifest kept in the database, apart from the artifact store, so an adapter whose
  files were changed after registration is refused at download instead of served;
* aliases (``production``, ``previous``, ``canary``) moved under a file lock and written to an
  audit log, so a promote racing a rollback cannot lose the way back;
* retries with jittered backoff on "database is locked", because SQLite (and MLflow's SQLAlchemy
  store over it) turns concurrent writers into errors rather than waits in some cases.

Nothing here loads an adapter: files are only copied and hashed, and pickle formats are refused.
"""

from __future__ import annotations

import os

# MLflow narrates schema creation at INFO on stderr and reads this at its import: set it first.
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from tuneloop.registry.audit import JsonlAudit, TagAudit
from tuneloop.registry.core import ARTIFACT_DIR, CANARY, PREVIOUS, PRODUCTION, Registry
from tuneloop.registry.lineage import Lineage, ModelVersion
from tuneloop.registry.locks import with_retry
from tuneloop.registry.manifest import (
    ALLOWED_SUFFIXES,
    AdapterIntegrityError,
    build_manifest,
    combined_sha256,
    file_sha256,
    verify_manifest,
)

__all__ = [
    "ALLOWED_SUFFIXES",
    "ARTIFACT_DIR",
    "CANARY",
    "PREVIOUS",
    "PRODUCTION",
    "AdapterIntegrityError",
    "JsonlAudit",
    "Lineage",
    "ModelVersion",
    "Registry",
    "TagAudit",
    "build_manifest",
    "combined_sha256",
    "file_sha256",
    "verify_manifest",
    "with_retry",
]
