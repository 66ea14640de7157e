"""Detect the JavaScript/TypeScript side of a repository from its committed root files.

A `package.json` with a lock file is installed exactly as the lock file says, with lifecycle
scripts off (`npm ci --ignore-scripts`, `pnpm install --frozen-lockfile --ignore-scripts`,
`yarn install --frozen-lockfile --ignore-scripts`, Yarn Berry's `--immutable
--mode=skip-build`). pnpm and Yarn come through corepack, at the version package.json's
`packageManager` field names (else corepack's own pinned default), downloaded from the npm
registry only. A `package.json` without a lock file cannot be installed reproducibly: that is a
named problem, never an unlocked `npm install`.

No code of the repository runs during the install either: pnpm ignores `.pnpmfile.cjs`
(`--ignore-pnpmfile`), Yarn ignores a `yarn-path`/`yarnPath` (`YARN_IGNORE_PATH=1`),
corepack ignores a committed `.corepack.env` (`COREPACK_ENV_FILE=0`), and a Yarn Berry
`.yarnrc.yml` naming a `yarnPath` or `plugins` (JavaScript files Yarn would load) is a named
problem. Settings given as environment variables and flags win over a committed `.npmrc` or
`.yarnrc` (`ignore-scripts=false` there changes nothing).

The packages are installed in the workspace, as the repository expects them, then moved to
`/env/node_modules` (`sandbox.layout.NODE_MODULES`), which the sandbox shows read-only at
`/workspace/node_modules` in the engine and check phases: the paths the package manager wrote
(pnpm's links into `.pnpm`, `.bin` shims) are the paths the checks see.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import yaml

from codefactory.projects.model import FileSource, JavaScriptProject, RepositoryConfig, SetupStep
from codefactory.sandbox.layout import CACHE_DIR, ENV_DIR, NODE_MODULES, PROXY_URL, SH, system_tool

PACKAGE_JSON = "package.json"
NPM_LOCKS = ("package-lock.json", "npm-shrinkwrap.json")
PNPM_LOCK = "pnpm-lock.yaml"
YARN_LOCK = "yarn.lock"
YARNRC_YML = ".yarnrc.yml"
BERRY_CODE_KEYS = ("yarnPath", "plugins")
"""`.yarnrc.yml` keys naming JavaScript files of the repository that Yarn Berry would load
(its own release, its plugins): refused, since setup never runs the repository's code."""
MANAGERS = ("npm", "pnpm", "yarn")
NPM_REGISTRY = "https://registry.npmjs.org"
NO_TEST_SPECIFIED = 'echo "Error: no test specified" && exit 1'
"""`scripts.test` as `npm init` writes it: a placeholder, not a test suite."""
ESLINT_FLAT_CONFIGS = tuple(
    f"eslint.config.{ext}" for ext in ("js", "mjs", "cjs", "ts", "mts", "cts")
)
ESLINT_LEGACY_CONFIGS = tuple(
    f".eslintrc{ext}" for ext in (".js", ".cjs", ".yaml", ".yml", ".json", "")
)
_PACKAGE_MANAGER = re.compile(r"^(npm|pnpm|yarn)@(\d+\.\d+\.\d+[\w.+-]*)$")
COREPACK_HOME = f"{ENV_DIR}/.corepack"
"""Where corepack keeps the package manager for the check phase: under `/env`, read-only and
offline there, so the checks run the same pnpm or Yarn the setup phase installed with."""
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
COREPACK_CACHE = f"{CACHE_DIR}/corepack"
"""Where the setup phase's corepack downloads package managers, kept between setups."""

NO_REPOSITORY_CODE_ENV = {
    "COREPACK_ENV_FILE": "0",
    "YARN_IGNORE_PATH": "1",
    # Yarn 4 reads `.env.yarn` into every script's environment (a NODE_OPTIONS=--require)
    "YARN_INJECT_ENVIRONMENT_FILES": "/dev/null",
}
"""Variables that keep the package manager itself the one corepack installed: corepack reads
no committed `.corepack.env` (which could set any `COREPACK_` variable), Yarn (1 and
Berry) never hands over to a `yarn-path`/`yarnPath` file of the repository, and Yarn 4 injects
no committed `.env.yarn` into scripts. For every phase
that runs a package manager (setup here, the checks' `corepack yarn run test`): see
`no_repository_code_env`."""

PNPM_NO_PNPMFILE_ENV = {"npm_config_ignore_pnpmfile": "true"}
"""pnpm's `--ignore-pnpmfile` as a variable, which `pnpm run` honours too (npm warns about it
as an unknown setting, so it is pnpm's only)."""


def no_repository_code_env(manager: str) -> dict[str, str]:
    """The variables under which `manager` (`npm`, `pnpm`, `yarn`) runs none of the
    repository's own package-manager code (a `.corepack.env`, a `yarn-path`/`yarnPath`, a
    `.pnpmfile.cjs`), for any phase: a check's `corepack pnpm run test` included."""
    extra = PNPM_NO_PNPMFILE_ENV if manager == "pnpm" else {}
    return {**NO_REPOSITORY_CODE_ENV, **extra}


NPM = system_tool("npm")
COREPACK = system_tool("corepack")
ENV = system_tool("env")


def detect_javascript(
    files: FileSource, config: RepositoryConfig
) -> tuple[JavaScriptProject | None, list[str]]:
    """The JavaScript project at the root of `files`, and the problems found reading it.

    (None, []) when the repository has no root `package.json` (nor a lock file without one),
    or only one with no lock file, no test script and no ESLint configuration.
    A problem is one sentence naming the file and what could not be read or done: a
    malformed `package.json`, no lock file, a `packageManager` field naming a manager whose
    lock file is missing. `config.test_command` does not change the detected `test_script`:
    the test check reads the config itself.
    """
    paths = set(files.paths())
    locks = [p for p in (*NPM_LOCKS, PNPM_LOCK, YARN_LOCK) if p in paths]
    if PACKAGE_JSON not in paths:
        if locks:
            return None, [f"{locks[0]} is committed without a package.json: nothing to install"]
        return None, []
    manifest, problem = _manifest(files.read(PACKAGE_JSON))
    if manifest is None:
        return None, [problem]
    if not locks and declared_test_script(manifest) is None and not eslint_config(paths, manifest):
        # a package.json kept for tooling metadata (a Python repository's prettier or
        # commitlint settings): nothing to install, test or lint, so no JavaScript side
        return None, []
    pinned, problems = _package_manager(manifest)
    manager, lock_file, lock_problem = _choose_lock(locks, pinned, files)
    problems += [lock_problem] if lock_problem else []
    setup: tuple[SetupStep, ...] = ()
    berry = _is_berry(files, lock_file)
    yarn_2_up = (
        pinned is not None and pinned.startswith("yarn@") and not pinned.startswith("yarn@1.")
    )
    reads_yarnrc_yml = manager == "yarn" and (berry or yarn_2_up)
    code_problem = berry_code_problem(files.read(YARNRC_YML)) if reads_yarnrc_yml else ""
    problems += [code_problem] if code_problem else []
    if lock_file and not code_problem:
        setup = install_steps(manager, lock_file, pinned, berry=berry)
    project = JavaScriptProject(
        manager=manager,
        lock_file=lock_file,
        setup=setup,
        inputs=tuple(sorted({PACKAGE_JSON, *locks, *_manager_settings(paths)})),
        test_script=declared_test_script(manifest),
        eslint_config=eslint_config(paths, manifest),
    )
    return project, problems


def _manifest(raw: bytes | None) -> tuple[dict[str, Any] | None, str]:
    if raw is None:
        return None, "package.json cannot be read (a link out of the tree?)"
    try:
        manifest = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        return None, f"package.json is not UTF-8: {exc}"
    except ValueError as exc:
        return None, f"package.json is not valid JSON: {exc}"
    except (RecursionError, MemoryError) as exc:
        return (
            None,
            f"package.json is nested too deeply (or too large) to read: {type(exc).__name__}",
        )
    if not isinstance(manifest, dict):
        return None, f"package.json is not a JSON object but a {type(manifest).__name__}"
    return manifest, ""


def _package_manager(manifest: dict[str, Any]) -> tuple[str | None, list[str]]:
    """`packageManager` (`pnpm@9.1.0+sha512...`) as given, or None; a malformed one is a
    problem (corepack would refuse it too)."""
    field = manifest.get("packageManager")
    if field is None:
        return None, []
    if not isinstance(field, str) or not _PACKAGE_MANAGER.match(field.strip()):
        return None, [f"package.json's packageManager {field!r} is not `npm|pnpm|yarn@<version>`"]
    return field.strip(), []


def _choose_lock(locks: list[str], pinned: str | None, files: FileSource) -> tuple[str, str, str]:
    """(manager, lock file, problem): the pinned manager's lock, else the first lock found
    (npm, pnpm, yarn in that order); an empty lock file name with a problem when none fits."""
    by_manager = {_manager_of(lock): lock for lock in reversed(locks)}
    if pinned is not None:
        manager = pinned.split("@", 1)[0]
        if manager in by_manager:
            return manager, by_manager[manager], ""
        wanted = " or ".join(NPM_LOCKS) if manager == "npm" else _lock_of(manager)
        return (
            manager,
            "",
            (
                f"package.json's packageManager names {manager} but {wanted} is not committed: "
                "no locked install is possible"
            ),
        )
    if not locks:
        return (
            "npm",
            "",
            (
                "package.json has no lock file (package-lock.json, npm-shrinkwrap.json, "
                "pnpm-lock.yaml or yarn.lock): no locked install is possible"
            ),
        )
    return _manager_of(locks[0]), locks[0], ""


def _manager_of(lock: str) -> str:
    return {PNPM_LOCK: "pnpm", YARN_LOCK: "yarn"}.get(lock, "npm")


def _lock_of(manager: str) -> str:
    return {"pnpm": PNPM_LOCK, "yarn": YARN_LOCK}[manager]


def _is_berry(files: FileSource, lock_file: str) -> bool:
    """Yarn 2+ ("Berry") writes a YAML lock file with a `__metadata` entry; Yarn 1 does not."""
    if lock_file != YARN_LOCK:
        return False
    raw = files.read(YARN_LOCK) or b""
    return re.search(rb"^__metadata:", raw, re.MULTILINE) is not None


def berry_code_problem(raw: bytes | None) -> str:
    """A problem naming the `yarnPath` or `plugins` of a Yarn Berry `.yarnrc.yml` (its bytes,
    None when absent): each names a JavaScript file of the repository that Yarn would run
    during the install. Empty when there is none; an unreadable file is a problem too."""
    if raw is None:
        return ""
    try:
        settings = yaml.safe_load(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, yaml.YAMLError, RecursionError, MemoryError) as exc:
        return f"{YARNRC_YML} cannot be read as YAML: {type(exc).__name__}: {exc}"[:500]
    if settings is None:
        return ""
    if not isinstance(settings, dict):
        return f"{YARNRC_YML} is not a YAML mapping but a {type(settings).__name__}"
    found = [key for key in BERRY_CODE_KEYS if key in settings]
    if not found:
        return ""
    named = " and ".join(f"`{key}`" for key in found)
    return (
        f"{YARNRC_YML} sets {named}, JavaScript files of the repository that Yarn would run "
        "during the install (setup never runs the repository's code): remove "
        f"{named} from {YARNRC_YML} and pin Yarn with package.json's packageManager "
        "(`yarn@4.x.y`) instead"
    )


def _manager_settings(paths: set[str]) -> list[str]:
    """The package managers' committed settings files among `paths` (inputs of the setup)."""
    names = (".npmrc", ".yarnrc", YARNRC_YML, ".pnpmfile.cjs", ".pnpmfile.mjs", ".corepack.env")
    code = (".yarn/releases/", ".yarn/plugins/")
    return [p for p in paths if p in names or p.startswith(code)]


def install_steps(
    manager: str, lock_file: str, pinned: str | None, *, berry: bool = False
) -> tuple[SetupStep, ...]:
    """The setup phase's steps: a locked install, lifecycle scripts off, then the packages
    moved to `/env/node_modules`. `pinned` is package.json's `packageManager` (corepack
    downloads that version), None for corepack's default."""
    why = f"{lock_file} ({manager}{', packageManager ' + pinned if pinned else ''})"
    env = [
        f"npm_config_cache={CACHE_DIR}/npm",
        "npm_config_ignore_scripts=true",
        # the lock file pins every tarball's integrity: a cached copy is the same bytes
        "npm_config_prefer_offline=true",
        "npm_config_audit=false",
        "npm_config_fund=false",
        "npm_config_update_notifier=false",
        f"npm_config_registry={NPM_REGISTRY}/",
        f"COREPACK_HOME={COREPACK_CACHE}",
        "COREPACK_ENABLE_DOWNLOAD_PROMPT=0",
        "COREPACK_ENABLE_STRICT=0",
        "COREPACK_DEFAULT_TO_LATEST=0",
        f"COREPACK_NPM_REGISTRY={NPM_REGISTRY}",
        *(f"{name}={value}" for name, value in no_repository_code_env(manager).items()),
        "CI=true",
        # a bank's egress proxy re-signs TLS: trust the system store (npm does; corepack
        # and the package managers it runs are plain Node fetches)
        f"NODE_EXTRA_CA_CERTS={SYSTEM_CA}",
    ]
    if manager == "npm":
        command = [NPM, "ci", "--ignore-scripts", "--no-audit", "--no-fund"]
    elif manager == "pnpm":
        env.append(f"npm_config_store_dir={CACHE_DIR}/pnpm-store")
        command = [COREPACK, corepack_spec(manager, pinned), "install", "--frozen-lockfile",
                   "--ignore-scripts", "--ignore-pnpmfile",
                   "--config.confirmModulesPurge=false"]  # fmt: skip
    elif berry:
        # Plug'n'Play keeps no node_modules: the checks need one, at /env/node_modules
        env += ["YARN_NODE_LINKER=node-modules", "YARN_ENABLE_GLOBAL_CACHE=false",
                f"YARN_CACHE_FOLDER={CACHE_DIR}/yarn-berry",
                f"YARN_NPM_REGISTRY_SERVER={NPM_REGISTRY}", "YARN_ENABLE_TELEMETRY=0",
                # Berry reads neither HTTPS_PROXY nor NODE_EXTRA_CA_CERTS: its own names
                f"YARN_HTTP_PROXY={PROXY_URL}", f"YARN_HTTPS_PROXY={PROXY_URL}",
                f"YARN_HTTPS_CA_FILE_PATH={SYSTEM_CA}",
                "YARN_ENABLE_IMMUTABLE_CACHE=false"]  # fmt: skip
        command = [
            COREPACK,
            corepack_spec(manager, pinned),
            "install",
            "--immutable",
            "--mode=skip-build",
        ]
    else:
        env += [f"YARN_CACHE_FOLDER={CACHE_DIR}/yarn", f"YARN_REGISTRY={NPM_REGISTRY}"]
        if pinned is not None and pinned.startswith("yarn@1.") and "+" not in pinned:
            # the npm registry publishes no signature for any yarn@1.x, so corepack cannot
            # verify one and refuses ("No compatible signature found"); without a `+sha512`
            # hash in packageManager the tarball is trusted as npm trusts any: by TLS
            env.append("COREPACK_INTEGRITY_KEYS=0")
        command = [COREPACK, corepack_spec(manager, pinned), "install", "--frozen-lockfile",
                   "--ignore-scripts", "--non-interactive", "--no-progress"]  # fmt: skip
    install = SetupStep(argv=(ENV, *env, *command), why=why)
    script = _MOVE if manager == "npm" else f"{_MOVE}; {_keep_manager(manager)}"
    move = SetupStep(argv=(SH, "-c", script), why=f"{why}: the packages go to {NODE_MODULES}")
    return install, move


def _keep_manager(manager: str) -> str:
    """Copy the versions of `manager` corepack holds into `/env`, for the check phase."""
    source, target = f"{COREPACK_CACHE}/v1/{manager}", f"{COREPACK_HOME}/v1"
    return f"/usr/bin/mkdir -p {target}; /usr/bin/cp -a {source} {target}/"


def corepack_spec(manager: str, pinned: str | None) -> str:
    """What corepack runs: the pinned `pnpm@9.1.0` (hash kept: corepack verifies it), or the
    bare name for corepack's own pinned default version."""
    if pinned is not None and pinned.startswith(manager + "@"):
        return pinned
    return manager


_MOVE = (
    f"set -e; /usr/bin/rm -rf {shlex.quote(NODE_MODULES)}; /usr/bin/mkdir -p {ENV_DIR}; "
    f"if [ -d node_modules ]; then /usr/bin/mv node_modules {shlex.quote(NODE_MODULES)}; "
    f"else /usr/bin/mkdir {shlex.quote(NODE_MODULES)}; fi"
)


def declared_test_script(manifest: dict[str, Any]) -> str | None:
    """`scripts.test`, or None when there is none or it is `npm init`'s placeholder."""
    scripts = manifest.get("scripts")
    script = scripts.get("test") if isinstance(scripts, dict) else None
    if not isinstance(script, str) or not script.strip():
        return None
    if script.strip() == NO_TEST_SPECIFIED:
        return None
    return script


def eslint_config(paths: set[str], manifest: dict[str, Any]) -> str | None:
    """The ESLint configuration the repository commits: a flat config, a legacy `.eslintrc*`,
    or package.json's `eslintConfig` key (named `package.json#eslintConfig`); None without."""
    for name in (*ESLINT_FLAT_CONFIGS, *ESLINT_LEGACY_CONFIGS):
        if name in paths:
            return name
    if isinstance(manifest.get("eslintConfig"), dict):
        return f"{PACKAGE_JSON}#eslintConfig"
    return None
