"""Browser libraries we serve ourselves, vendored from npm packages and checked.

GraphiQL (and later the editor) runs on libraries published as npm packages.
A page that loads them from a CDN stays blank on a machine without internet, so
the files are committed under `web/vendor/` and served from `/static/vendor/`.
Node and npm are needed only to re-vendor (a developer's action); serving the
files and `--check` need neither.

    web/vendor/packages.toml    what we want: per package an exact version and the
                                files of it we serve (edited by hand)
    web/vendor/manifest.json    what we have: per package its name, version, licence
                                and the tarball's integrity; per file its SHA-256 and
                                size (written by `studio vendor`)
    web/vendor/<name>@<version>/<file>
                                the files themselves, with the package's licence
                                files and its package.json beside them

`studio vendor` (`./dev vendor`) gets each package's tarball with the ordinary
client, `npm pack <name>@<version> --json --ignore-scripts --pack-destination <tmp>`,
from whichever registry npm is configured to use (its `registry` setting, e.g.
`npm_config_registry`; `--registry URL` is passed on to npm). It then checks the
tarball itself against its integrity (Subresource Integrity syntax, e.g.
`sha512-<base64>`: https://docs.npmjs.com/cli/v10/configuring-npm/package-lock-json#packages
and https://www.w3.org/TR/SRI/#integrity-metadata): the one npm reports for it,
and, for a version already in manifest.json, the one recorded there, so a
version that was republished or tampered with is refused. Then it replaces
everything under web/vendor/ with the declared files and rewrites the manifest.
Nothing on disk changes unless every package was fetched and verified.

`studio vendor --check` (`./dev vendor --check`) needs no network and no npm: it
verifies that the manifest lists exactly what packages.toml declares, that every
file listed is on disk with its SHA-256 and size, and that nothing else is there.

To vendor another library, add it to packages.toml and run `./dev vendor`:

    [[package]]
    name = "react"
    version = "18.2.0"
    files = ["umd/react.production.min.js"]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

VENDOR_DIR = Path(__file__).resolve().parent.parent / "web" / "vendor"
DECLARATION = "packages.toml"
MANIFEST = "manifest.json"
MAX_TARBALL_BYTES = 64 * 1024 * 1024
NPM_TIMEOUT = 300.0
"""Seconds one `npm pack` may take before vendoring gives up."""
SRI_ALGORITHMS = ("sha512", "sha384", "sha256")
"""The SRI hash algorithms we accept, strongest first (SRI §3.3.3 prefers the strongest)."""

_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
_EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_LICENCE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE)([.-].*)?$", re.IGNORECASE)


class VendorError(Exception):
    """Vendoring could not be done: a package, version or file that is not there, a
    tarball npm could not get or that does not match its integrity, or a bad
    packages.toml or manifest.json."""


class NpmMissingError(VendorError):
    """Re-vendoring needs npm (it comes with Node.js) and there is no `npm` on PATH."""


def _package_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not an npm package name")
    return name


def _exact_version(version: str) -> str:
    if not _EXACT_VERSION.match(version):
        raise ValueError(f"{version!r} is not an exact version (no ranges: pin it, e.g. 18.2.0)")
    return version


def _relative_path(path: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or "\\" in path or any(p in ("..", ".") for p in parts):
        raise ValueError(f"{path!r} is not a path inside the package")
    return str(PurePosixPath(*parts))


PackageName = Annotated[str, AfterValidator(_package_name)]
ExactVersion = Annotated[str, AfterValidator(_exact_version)]
RelativePath = Annotated[str, AfterValidator(_relative_path)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", populate_by_name=True)


class DeclaredPackage(_Strict):
    """One `[[package]]` of packages.toml: a package at an exact version, and its files."""

    name: PackageName
    version: ExactVersion
    files: list[RelativePath] = Field(min_length=1)


class Declaration(_Strict):
    """packages.toml."""

    package: list[DeclaredPackage] = Field(default_factory=list)


class VendoredFile(_Strict):
    """A file on disk at `web/vendor/<name>@<version>/<path>`; `sha256` in hex, `size` in bytes."""

    path: RelativePath
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class VendoredPackage(_Strict):
    """A vendored package: which one, under what licence, and its files."""

    name: PackageName
    version: ExactVersion
    license: str
    """The `license` of its package.json (an SPDX expression), as published."""
    integrity: str
    """The tarball's SRI hash (`sha512-<base64>`, as npm's `dist.integrity`), checked
    before anything was taken from it and again whenever this version is re-vendored."""
    license_files: list[RelativePath] = Field(alias="licenseFiles")
    """Its licence files (LICENSE, COPYING, NOTICE...) as vendored; package.json is always."""
    files: list[VendoredFile]

    @property
    def directory(self) -> str:
        """Its folder under web/vendor/ (and /static/vendor/): `<name>@<version>`."""
        return f"{self.name}@{self.version}"


class Manifest(_Strict):
    """manifest.json."""

    note: str = ""
    packages: list[VendoredPackage] = Field(default_factory=list)

    def package(self, name: str) -> VendoredPackage:
        """The vendored package called `name`; KeyError if there is none."""
        for package in self.packages:
            if package.name == name:
                return package
        raise KeyError(name)

    def paths(self) -> dict[str, VendoredFile]:
        """Every vendored file by its path under web/vendor/, e.g. `react@18.2.0/LICENSE`."""
        return {
            f"{package.directory}/{file.path}": file
            for package in self.packages
            for file in package.files
        }

    def url_path(self, name: str, file: str, *, prefix: str = "/static/vendor") -> str:
        """Where `file` of package `name` is served; KeyError if it was not vendored."""
        package = self.package(name)
        if file not in {f.path for f in package.files}:
            raise KeyError(f"{name}: {file}")
        return f"{prefix}/{package.directory}/{file}"


MANIFEST_NOTE = (
    "Written by `./dev vendor` from packages.toml (do not edit); "
    "`./dev vendor --check` verifies the files against it."
)


def read_declaration(directory: Path = VENDOR_DIR) -> Declaration:
    """packages.toml, validated; VendorError if it is missing or malformed."""
    path = directory / DECLARATION
    try:
        return Declaration.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as error:
        raise VendorError(f"{path}: {error}") from error


def read_manifest(directory: Path = VENDOR_DIR) -> Manifest:
    """manifest.json, validated; VendorError if it is missing or malformed."""
    path = directory / MANIFEST
    try:
        return Manifest.model_validate_json(path.read_bytes(), strict=True)
    except (OSError, ValidationError) as error:
        raise VendorError(f"{path}: {error}") from error


def check(directory: Path = VENDOR_DIR) -> list[str]:
    """Every way web/vendor/ differs from its manifest and packages.toml; [] when it matches.

    Offline: reads only the files. Each problem is one sentence naming the file.
    """
    try:
        declaration = read_declaration(directory)
        manifest = read_manifest(directory)
    except VendorError as error:
        return [str(error)]
    problems: list[str] = []
    vendored = {(p.name, p.version): p for p in manifest.packages}
    declared = {(p.name, p.version): p for p in declaration.package}
    for name, version in declared.keys() - vendored.keys():
        problems.append(f"{name}@{version} is declared but not vendored: run ./dev vendor")
    for name, version in vendored.keys() - declared.keys():
        problems.append(f"{name}@{version} is vendored but not declared: run ./dev vendor")
    for key in declared.keys() & vendored.keys():
        missing = set(declared[key].files) - {f.path for f in vendored[key].files}
        for missing_path in sorted(missing):
            problems.append(f"{key[0]}@{key[1]}/{missing_path} is declared but not vendored")
    listed = manifest.paths()
    for relative, file in sorted(listed.items()):
        try:
            data = (directory / relative).read_bytes()
        except OSError:
            problems.append(f"{relative} is in the manifest but not on disk")
            continue
        if len(data) != file.size or hashlib.sha256(data).hexdigest() != file.sha256:
            problems.append(f"{relative} does not match its SHA-256 in the manifest")
    for found in sorted(directory.rglob("*")):
        relative = found.relative_to(directory).as_posix()
        if found.is_file() and relative not in listed and relative not in (DECLARATION, MANIFEST):
            problems.append(f"{relative} is not in the manifest")
    return problems


def verify_integrity(data: bytes, integrity: str) -> None:
    """Raise VendorError unless `data` matches the SRI string `integrity`.

    Of the hashes given, the strongest one we know (sha512, sha384, sha256) is
    checked; one without any of those is refused.
    """
    given: dict[str, list[str]] = {}
    for token in integrity.split():
        algorithm, _, digest = token.partition("-")
        given.setdefault(algorithm.lower(), []).append(digest.partition("?")[0])
    for algorithm in SRI_ALGORITHMS:
        if algorithm in given:
            actual = hashlib.new(algorithm, data).digest()
            for digest in given[algorithm]:
                try:
                    expected = base64.b64decode(digest, validate=True)
                except ValueError:
                    continue
                if hmac.compare_digest(actual, expected):
                    return
            raise VendorError(f"the tarball does not match the integrity {integrity!r}")
    raise VendorError(f"no sha512, sha384 or sha256 hash in the integrity {integrity!r}")


def sha512_integrity(data: bytes) -> str:
    """`data`'s SRI string with SHA-512, `sha512-<base64>`, as npm writes `dist.integrity`."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode("ascii")


def find_npm() -> str:
    """The path of the `npm` command; NpmMissingError when it is not on PATH."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmMissingError(
            "re-vendoring needs npm, which comes with Node.js, and there is no `npm` on "
            "PATH: install Node.js (e.g. `apt-get install npm`) and run ./dev vendor again. "
            "`./dev vendor --check` needs neither."
        )
    return npm


def pack(
    wanted: DeclaredPackage, destination: Path, *, npm: str, registry: str | None = None
) -> tuple[bytes, str]:
    """The package's tarball as npm gets it, and the integrity npm reports for it.

    Runs `npm pack <name>@<version> --json --ignore-scripts --pack-destination
    <destination>` (https://docs.npmjs.com/cli/v10/commands/npm-pack), adding
    `--registry <registry>` when given; otherwise npm uses its own setting. Raises
    VendorError with npm's own explanation if npm fails or answers for another
    package, and if the tarball is over MAX_TARBALL_BYTES.
    """
    what = f"{wanted.name}@{wanted.version}"
    command = [npm, "pack", what, "--json", "--ignore-scripts", "--pack-destination"]
    command.append(str(destination))
    if registry:
        command += ["--registry", registry]
    try:
        result = subprocess.run(  # noqa: S603 (npm, a validated name and an exact version)
            command, capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise VendorError(f"{what}: `npm pack` did not finish: {error}") from error
    try:
        answer = json.loads(result.stdout)
    except ValueError:
        answer = None
    if result.returncode != 0 or not isinstance(answer, list) or len(answer) != 1:
        raise VendorError(f"{what}: `npm pack` failed: {_npm_failure(answer, result)}")
    packed = answer[0]
    try:
        name, version = packed["name"], packed["version"]
        integrity, filename = packed["integrity"], packed["filename"]
    except (KeyError, TypeError) as error:
        raise VendorError(f"{what}: `npm pack --json` did not say {error}") from error
    if (name, version) != (wanted.name, wanted.version):
        raise VendorError(f"{what}: npm packed {name}@{version} instead")
    tarball_path = destination / PurePosixPath(str(filename)).name
    try:
        if tarball_path.stat().st_size > MAX_TARBALL_BYTES:
            raise VendorError(f"{what}: the tarball is over {MAX_TARBALL_BYTES} bytes")
        return tarball_path.read_bytes(), str(integrity)
    except OSError as error:
        raise VendorError(f"{what}: npm wrote no tarball {tarball_path.name}: {error}") from error


def _npm_failure(answer: object, result: subprocess.CompletedProcess[str]) -> str:
    """npm's summary of why it failed (its `--json` error, else its last error lines)."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        summary = answer["error"].get("summary")
        if isinstance(summary, str) and summary:
            return summary
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    lines = [line for line in lines if "complete log of this run" not in line]
    return "; ".join(lines[-3:]) or f"npm exited with {result.returncode}"


def unpack(
    wanted: DeclaredPackage, tarball: bytes, integrity: str
) -> tuple[VendoredPackage, dict[str, bytes]]:
    """The manifest entry and the files (by path inside the package) to vendor from
    `tarball`, refused (VendorError) unless it matches the SRI string `integrity`.

    The files are the declared ones, the licence files at the package's top
    (LICENSE, LICENCE, COPYING, NOTICE, with any extension) and package.json,
    whose `license` is recorded. The recorded integrity is the tarball's SHA-512.
    """
    what = f"{wanted.name}@{wanted.version}"
    try:
        verify_integrity(tarball, integrity)
    except VendorError as error:
        raise VendorError(f"{what}: {error}") from error
    contents = _tarball_files(tarball, what)
    licence_files = sorted(p for p in contents if "/" not in p and _LICENCE_FILE.match(p))
    files: dict[str, bytes] = {}
    for path in sorted({*wanted.files, *licence_files, "package.json"}):
        if path not in contents:
            raise VendorError(f"{what} has no file {path}")
        files[path] = contents[path]
    try:
        published = json.loads(files["package.json"])
        licence = published.get("license") if isinstance(published, dict) else None
    except ValueError as error:
        raise VendorError(f"{what}: its package.json is not JSON: {error}") from error
    package = VendoredPackage(
        name=wanted.name,
        version=wanted.version,
        license=licence if isinstance(licence, str) else "(see its licence files)",
        integrity=sha512_integrity(tarball),
        license_files=licence_files,
        files=[
            VendoredFile(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
            for path, data in files.items()
        ],
    )
    return package, files


def _tarball_files(tarball: bytes, what: str) -> dict[str, bytes]:
    """The regular files of an npm tarball by path under its top folder (usually `package/`)."""
    contents: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            for member in archive:
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or len(parts) < 2:
                    continue
                extracted = archive.extractfile(member)
                if extracted is not None:
                    contents["/".join(parts[1:])] = extracted.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise VendorError(f"{what}: the tarball cannot be read: {error}") from error
    return contents


def recorded_integrity(directory: Path = VENDOR_DIR) -> dict[tuple[str, str], str]:
    """The integrity manifest.json records per (name, version); {} when there is none.

    Read with only the fields it needs, so a manifest written by an older layout
    still vouches for its tarballs. VendorError if the file is there but not JSON.
    """
    path = directory / MANIFEST
    try:
        recorded = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise VendorError(f"{path}: {error}") from error
    packages = recorded.get("packages") if isinstance(recorded, dict) else None
    return {
        (package["name"], package["version"]): package["integrity"]
        for package in (packages if isinstance(packages, list) else [])
        if isinstance(package, dict)
        and all(isinstance(package.get(key), str) for key in ("name", "version", "integrity"))
    }


def fetch(directory: Path = VENDOR_DIR, *, registry: str | None = None) -> Manifest:
    """Get every declared package with npm, verify it, and rewrite web/vendor/ and its manifest.

    A version manifest.json already lists must match the integrity recorded there;
    a new one must match what npm reports, and that is recorded. `registry` is passed
    on to `npm pack --registry`. Raises NpmMissingError without npm, and VendorError
    (leaving web/vendor/ as it was) if any package cannot be fetched or verified.
    Returns the new manifest.
    """
    declaration = read_declaration(directory)
    recorded = recorded_integrity(directory)
    npm = find_npm()
    fetched: list[tuple[VendoredPackage, dict[str, bytes]]] = []
    with tempfile.TemporaryDirectory(prefix="studio-vendor-") as temporary:
        for wanted in declaration.package:
            destination = Path(temporary) / f"{len(fetched)}"
            destination.mkdir()
            tarball, reported = pack(wanted, destination, npm=npm, registry=registry)
            known = recorded.get((wanted.name, wanted.version))
            if known is not None:
                try:
                    verify_integrity(tarball, known)
                except VendorError as error:
                    raise VendorError(
                        f"{wanted.name}@{wanted.version}: the tarball npm got does not match "
                        f"the integrity recorded in {MANIFEST} ({known}): it was republished "
                        "or tampered with; not vendored"
                    ) from error
            fetched.append(unpack(wanted, tarball, reported))
    for entry in directory.iterdir():
        if entry.name in (DECLARATION, MANIFEST):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for package, files in fetched:
        for path, data in files.items():
            target = directory / package.directory / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    manifest = Manifest(note=MANIFEST_NOTE, packages=[package for package, _ in fetched])
    text = json.dumps(manifest.model_dump(mode="json", by_alias=True), indent=2)
    (directory / MANIFEST).write_text(text + "\n", encoding="utf-8")
    return manifest
