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
verifies that the manifest is exactly what `./dev vendor` would write from
packages.toml for the files on disk (per package the declared files, its licence
files and package.json, no more and no fewer; its licence as package.json gives it;
no package or file twice), that every file listed is on disk, a regular file with
its SHA-256 and size, and that nothing else is there (no other file, folder,
symbolic link, FIFO or device). The tarballs themselves are not on disk: their
integrity is verified (against what npm gets) whenever `./dev vendor` runs.

A tarball is refused whole (VendorError) unless every entry is a regular file or
folder under its one `package/` folder (where `npm pack` puts everything), with a
relative UTF-8 name free of `..`, `.`, empty parts, backslashes and control
characters, and no path twice.

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
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import tomllib
import unicodedata
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

VENDOR_DIR = Path(__file__).resolve().parent.parent / "web" / "vendor"
DECLARATION = "packages.toml"
MANIFEST = "manifest.json"
MAX_TARBALL_BYTES = 64 * 1024 * 1024
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
"""The most a tarball's files may hold once decompressed (a gzip bomb is refused)."""
PACKAGE_ROOT = "package"
"""The one folder of an npm tarball: `npm pack` puts every file under `package/`."""
NPM_TIMEOUT = 300.0
"""Seconds one `npm pack` may take before vendoring gives up."""
SRI_ALGORITHMS = ("sha512", "sha384", "sha256")
"""The SRI hash algorithms we accept, strongest first (SRI §3.3.3 prefers the strongest)."""

# Matched with fullmatch: `$` would also match before a trailing newline.
_NAME = re.compile(r"(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*")
_EXACT_VERSION = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")
_LICENCE_FILE = re.compile(r"(LICEN[CS]E|COPYING|NOTICE)([.-].*)?", re.IGNORECASE | re.DOTALL)
_SHA512_INTEGRITY = re.compile(r"sha512-[A-Za-z0-9+/]{86}==")


class VendorError(Exception):
    """Vendoring could not be done: a package, version or file that is not there, a
    tarball npm could not get or that does not match its integrity, or a bad
    packages.toml or manifest.json."""


class NpmMissingError(VendorError):
    """Re-vendoring needs npm (it comes with Node.js) and there is no `npm` on PATH."""


def _package_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an npm package name")
    return name


def _exact_version(version: str) -> str:
    if not _EXACT_VERSION.fullmatch(version):
        raise ValueError(f"{version!r} is not an exact version (no ranges: pin it, e.g. 18.2.0)")
    return version


def _bad_name(path: str) -> str | None:
    """Why `path` (a `/`-separated relative path) is not a plain one, or None if it is."""
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in path):
        return "has a control character"
    if "\\" in path:
        return "has a backslash"
    if path.startswith("/"):
        return "is absolute"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "has an empty, `.` or `..` part"
    return None


def _relative_path(path: str) -> str:
    if _bad_name(path) is not None:
        raise ValueError(f"{path!r} is not a path inside the package")
    return path


def _sha512_integrity(integrity: str) -> str:
    if not _SHA512_INTEGRITY.fullmatch(integrity):
        raise ValueError(
            f"{integrity!r} is not a tarball integrity as npm writes it (sha512-<base64>)"
        )
    return integrity


def _unique(items: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            raise ValueError(f"{what} {item!r} is there twice")
        seen.add(item)


PackageName = Annotated[str, AfterValidator(_package_name)]
ExactVersion = Annotated[str, AfterValidator(_exact_version)]
RelativePath = Annotated[str, AfterValidator(_relative_path)]
Sha512Integrity = Annotated[str, AfterValidator(_sha512_integrity)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", populate_by_name=True)


class DeclaredPackage(_Strict):
    """One `[[package]]` of packages.toml: a package at an exact version, and its files."""

    name: PackageName
    version: ExactVersion
    files: list[RelativePath] = Field(min_length=1)

    @field_validator("files")
    @classmethod
    def _once_each(cls, files: list[str]) -> list[str]:
        _unique(files, "the file")
        return files


class Declaration(_Strict):
    """packages.toml. A package is declared once (one version): a page asks for it by name."""

    package: list[DeclaredPackage] = Field(default_factory=list)

    @field_validator("package")
    @classmethod
    def _once_each(cls, packages: list[DeclaredPackage]) -> list[DeclaredPackage]:
        _unique((p.name for p in packages), "the package")
        return packages


class VendoredFile(_Strict):
    """A file on disk at `web/vendor/<name>@<version>/<path>`; `sha256` in hex, `size` in bytes."""

    path: RelativePath
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class VendoredPackage(_Strict):
    """A vendored package: which one, under what licence, and its files."""

    name: PackageName
    version: ExactVersion
    license: str = Field(min_length=1)
    """The `license` of its package.json (an SPDX expression), as published."""
    integrity: Sha512Integrity
    """The tarball's SRI hash (`sha512-<base64>`, as npm's `dist.integrity`), checked
    before anything was taken from it and again whenever this version is re-vendored."""
    license_files: list[RelativePath] = Field(alias="licenseFiles")
    """Its licence files (LICENSE, COPYING, NOTICE...) as vendored; package.json is always."""
    files: list[VendoredFile]

    @field_validator("license_files")
    @classmethod
    def _licence_files_once(cls, paths: list[str]) -> list[str]:
        _unique(paths, "the licence file")
        return paths

    @field_validator("files")
    @classmethod
    def _files_once(cls, files: list[VendoredFile]) -> list[VendoredFile]:
        _unique((f.path for f in files), "the file")
        return files

    @property
    def directory(self) -> str:
        """Its folder under web/vendor/ (and /static/vendor/): `<name>@<version>`."""
        return f"{self.name}@{self.version}"


class Manifest(_Strict):
    """manifest.json. A package is listed once, as in packages.toml."""

    note: str = ""
    packages: list[VendoredPackage] = Field(default_factory=list)

    @field_validator("packages")
    @classmethod
    def _once_each(cls, packages: list[VendoredPackage]) -> list[VendoredPackage]:
        _unique((p.name for p in packages), "the package")
        return packages

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
    except ValidationError as error:
        raise VendorError(f"{path}: {_describe(error)}") from error
    except (OSError, ValueError) as error:  # TOMLDecodeError and UnicodeDecodeError
        raise VendorError(f"{path}: {error}") from error


def read_manifest(directory: Path = VENDOR_DIR) -> Manifest:
    """manifest.json, validated; VendorError if it is missing or malformed."""
    path = directory / MANIFEST
    try:
        return Manifest.model_validate_json(path.read_bytes(), strict=True)
    except ValidationError as error:
        raise VendorError(f"{path}: {_describe(error)}") from error
    except OSError as error:
        raise VendorError(f"{path}: {error}") from error


def _describe(error: ValidationError) -> str:
    """pydantic's errors as one line: `packages.0.integrity: <why>; ...`."""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '(top)'}: "
        f"{item['msg'].removeprefix('Value error, ')}"
        for item in error.errors(include_url=False)
    )


def check(directory: Path = VENDOR_DIR, *, needed: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Every way web/vendor/ differs from what `./dev vendor` would make of packages.toml
    and the files on disk; [] when it matches.

    `needed` holds (package name, file) pairs a page loads (e.g. api.graphiql's); each
    must be declared. Offline: reads only the files. Each problem is one sentence naming
    the file or package.
    """
    try:
        declaration = read_declaration(directory)
        manifest = read_manifest(directory)
    except VendorError as error:
        return [str(error)]
    problems: list[str] = []
    declared = {(p.name, p.version): p for p in declaration.package}
    vendored = {(p.name, p.version): p for p in manifest.packages}
    for name, version in sorted(declared.keys() - vendored.keys()):
        problems.append(f"{name}@{version} is declared but not vendored: run ./dev vendor")
    for name, version in sorted(vendored.keys() - declared.keys()):
        problems.append(f"{name}@{version} is vendored but not declared: run ./dev vendor")
    wanted_files = {(p.name, file) for p in declaration.package for file in p.files}
    for name, path in needed:
        if (name, path) not in wanted_files:
            problems.append(
                f"{name} {path} is loaded by a page but not declared in {DECLARATION}: "
                "declare it and run ./dev vendor"
            )
    for package in manifest.packages:
        wanted = declared.get((package.name, package.version))
        if wanted is not None:
            problems += _package_problems(directory, wanted, package)
    listed = manifest.paths()
    for relative, file in sorted(listed.items()):
        problems += _file_problems(directory, relative, file)
    problems += _stray_problems(directory, listed)
    if not problems and (directory / MANIFEST).read_bytes() != _manifest_text(
        _as_written(declaration, manifest)
    ).encode("utf-8"):
        problems.append(
            f"{MANIFEST} is not as ./dev vendor writes it (its note, order or layout "
            "differ): run ./dev vendor"
        )
    return problems


def _package_problems(
    directory: Path, wanted: DeclaredPackage, package: VendoredPackage
) -> list[str]:
    """How one vendored package's manifest entry differs from its declaration and folder."""
    problems: list[str] = []
    where = package.directory
    folder = directory / where
    listed = {file.path for file in package.files}
    # A licence file on disk but not listed is reported by _stray_problems, one listed
    # but not on disk by _file_problems.
    licence_files = sorted(p for p in listed if "/" not in p and _LICENCE_FILE.fullmatch(p))
    for path in sorted(set(wanted.files) - listed):
        problems.append(f"{where}/{path} is declared but not vendored")
    expected = {*wanted.files, *licence_files, "package.json"}
    for path in sorted(listed - expected):
        problems.append(
            f"{where}/{path} is in the manifest but is neither declared in {DECLARATION} "
            "nor a licence file nor package.json"
        )
    if package.license_files != licence_files:
        problems.append(
            f"{where}: the manifest names the licence files {package.license_files}, "
            f"but its licence files are {licence_files}"
        )
    try:
        published = _package_json((folder / "package.json").read_bytes(), where)
    except OSError:
        return [*problems, f"{where}/package.json is missing: run ./dev vendor"]
    except VendorError as error:
        return [*problems, str(error)]
    if (published.get("name"), published.get("version")) != (package.name, package.version):
        problems.append(
            f"{where}/package.json is for {published.get('name')}@{published.get('version')}"
        )
    if package.license != _licence(published):
        problems.append(
            f"{where}: the manifest gives the licence {package.license!r}, "
            f"its package.json {_licence(published)!r}"
        )
    return problems


def _file_problems(directory: Path, relative: str, file: VendoredFile) -> list[str]:
    """How a file the manifest lists differs from it on disk (a symbolic link or special
    file there is reported by _stray_problems)."""
    path = directory / relative
    try:
        mode = path.lstat().st_mode
    except OSError:
        return [f"{relative} is in the manifest but not on disk"]
    if not stat.S_ISREG(mode):
        return []
    try:
        data = path.read_bytes()
    except OSError as error:
        return [f"{relative} cannot be read: {error.strerror}"]
    if len(data) != file.size or hashlib.sha256(data).hexdigest() != file.sha256:
        return [f"{relative} does not match its SHA-256 in the manifest"]
    return []


def _stray_problems(directory: Path, listed: Iterable[str]) -> list[str]:
    """Everything under `directory` that is not a listed file, the folders holding them,
    packages.toml or manifest.json: other files and folders, symbolic links (even to
    an identical copy: the server does not follow them), FIFOs, sockets and devices."""
    listed = set(listed)
    folders = {str(parent) for path in listed for parent in PurePosixPath(path).parents}
    problems: list[str] = []

    def walk(folder: Path, prefix: str, stray: bool) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as error:
            problems.append(f"{prefix or './'} cannot be read: {error.strerror}")
            return
        for entry in entries:
            relative = prefix + entry.name
            if entry.is_symlink():
                problems.append(f"{relative} is a symbolic link: vendored files are regular files")
            elif entry.is_dir(follow_symlinks=False):
                before = len(problems)
                walk(Path(entry.path), relative + "/", stray or relative not in folders)
                # What a stray folder holds is reported; one that holds nothing, once.
                if not stray and relative not in folders and len(problems) == before:
                    problems.append(f"{relative}/ is a folder with no file of the manifest in it")
            elif not entry.is_file(follow_symlinks=False):
                problems.append(f"{relative} is not a regular file (a FIFO, socket or device)")
            elif relative not in listed and relative not in (DECLARATION, MANIFEST):
                problems.append(f"{relative} is not in the manifest")

    walk(directory, "", False)
    return problems


def _as_written(declaration: Declaration, manifest: Manifest) -> Manifest:
    """`manifest` as `./dev vendor` lays it out: its note, the packages in the order of
    packages.toml, each package's files by path."""
    order = {(p.name, p.version): index for index, p in enumerate(declaration.package)}
    packages = sorted(manifest.packages, key=lambda p: order.get((p.name, p.version), len(order)))
    return Manifest(
        note=MANIFEST_NOTE,
        packages=[
            p.model_copy(update={"files": sorted(p.files, key=lambda f: f.path)}) for p in packages
        ],
    )


def _manifest_text(manifest: Manifest) -> str:
    """manifest.json's text as `./dev vendor` writes it."""
    return json.dumps(manifest.model_dump(mode="json", by_alias=True), indent=2) + "\n"


def _package_json(data: bytes, what: str) -> dict[str, object]:
    """A package.json's object; VendorError if it is not a JSON object."""
    try:
        published = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise VendorError(f"{what}: its package.json is not JSON: {error}") from error
    if not isinstance(published, dict):
        raise VendorError(f"{what}: its package.json is not a JSON object")
    return published


def _licence(published: dict[str, object]) -> str:
    """What the manifest records as a package's licence: its package.json's `license`
    when that is a non-empty string (an SPDX expression), else a pointer to its files."""
    licence = published.get("license")
    return licence if isinstance(licence, str) and licence else "(see its licence files)"


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
    whose `license` is recorded and whose name and version must be the declared
    ones. The recorded integrity is the tarball's SHA-512. A tarball with an entry
    outside `package/`, a name that is absolute, holds `..`, `.`, an empty part, a
    backslash or a control character, a path twice, or a link or device is refused.
    """
    what = f"{wanted.name}@{wanted.version}"
    try:
        verify_integrity(tarball, integrity)
    except VendorError as error:
        raise VendorError(f"{what}: {error}") from error
    with _open_tarball(tarball, what) as archive:
        members = _tarball_members(archive, what)
        licence_files = sorted(p for p in members if "/" not in p and _LICENCE_FILE.fullmatch(p))
        files: dict[str, bytes] = {}
        for path in sorted({*wanted.files, *licence_files, "package.json"}):
            if path not in members:
                raise VendorError(f"{what} has no file {path}")
            files[path] = _read_member(archive, members[path], what)
    published = _package_json(files["package.json"], what)
    if (published.get("name"), published.get("version")) != (wanted.name, wanted.version):
        raise VendorError(
            f"{what}: its package.json is for {published.get('name')}@{published.get('version')}"
        )
    try:
        package = VendoredPackage(
            name=wanted.name,
            version=wanted.version,
            license=_licence(published),
            integrity=sha512_integrity(tarball),
            license_files=licence_files,
            files=[
                VendoredFile(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
                for path, data in files.items()
            ],
        )
    except ValidationError as error:
        raise VendorError(f"{what}: {_describe(error)}") from error
    return package, files


def _open_tarball(tarball: bytes, what: str) -> tarfile.TarFile:
    try:
        return tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise VendorError(f"{what}: the tarball cannot be read: {error}") from error


def _tarball_members(archive: tarfile.TarFile, what: str) -> dict[str, tarfile.TarInfo]:
    """The regular files of an npm tarball by path under `package/`; VendorError for any
    entry npm would not write (see unpack) or if they decompress to over MAX_UNPACKED_BYTES."""
    files: dict[str, tarfile.TarInfo] = {}
    folders: set[str] = set()
    total = 0
    try:
        for member in archive:
            name = member.name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise VendorError(f"{what}: the tarball holds a name that is not UTF-8") from None
            why = _bad_name(name)
            if why is not None:
                raise VendorError(f"{what}: the tarball holds {name!r}, which {why}")
            top, _, path = name.partition("/")
            if top != PACKAGE_ROOT or (not path and not member.isdir()):
                raise VendorError(f"{what}: the tarball holds {name!r}, outside its package/")
            if member.isdir():
                if path in files:
                    raise VendorError(f"{what}: the tarball holds {name!r} twice")
                folders.add(path)
                continue
            if not member.isfile():
                raise VendorError(
                    f"{what}: the tarball holds {name!r}, which is a link or device, not a file"
                )
            if path in files or path in folders:
                raise VendorError(f"{what}: the tarball holds {name!r} twice")
            total += member.size
            if total > MAX_UNPACKED_BYTES:
                raise VendorError(f"{what}: the tarball unpacks to over {MAX_UNPACKED_BYTES} bytes")
            files[path] = member
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise VendorError(f"{what}: the tarball cannot be read: {error}") from error
    for path in files:
        for parent in PurePosixPath(path).parents:
            if str(parent) in files:
                raise VendorError(f"{what}: the tarball holds {parent} both as a file and a folder")
    return files


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo, what: str) -> bytes:
    try:
        extracted = archive.extractfile(member)
        if extracted is None:
            raise VendorError(f"{what}: the tarball's {member.name!r} cannot be read")
        return extracted.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        raise VendorError(f"{what}: the tarball cannot be read: {error}") from error


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
    (directory / MANIFEST).write_text(_manifest_text(manifest), encoding="utf-8")
    return manifest
