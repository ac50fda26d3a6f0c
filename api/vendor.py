"""Browser libraries we serve ourselves, vendored from the npm registry and checked.

GraphiQL (and later the editor) runs on libraries published to the npm registry.
A page that loads them from a CDN stays blank on a machine without internet, so
the files are committed under `web/vendor/` and served from `/static/vendor/`.
No Node is needed: this module reads the registry's JSON and tarballs itself.

    web/vendor/packages.toml    what we want: per package an exact version and the
                                files of it we serve (edited by hand)
    web/vendor/manifest.json    what we have: per package its licence, the source
                                tarball's URL and `dist.integrity`; per file its
                                SHA-256 and size (written by `studio vendor`)
    web/vendor/<name>@<version>/<file>
                                the files themselves, with the package's licence
                                files and its package.json beside them

`studio vendor` (`./dev vendor`) fetches each package's metadata
(`GET <registry>/<name>/<version>`), downloads `dist.tarball`, refuses it unless
it matches `dist.integrity` (Subresource Integrity syntax, e.g. `sha512-<base64>`:
https://docs.npmjs.com/cli/v10/configuring-npm/package-lock-json#packages and
https://www.w3.org/TR/SRI/#integrity-metadata), then replaces everything under
web/vendor/ with the declared files and rewrites the manifest. Nothing on disk
changes unless every package was fetched and verified.

`studio vendor --check` (`./dev vendor --check`) needs no network: it verifies
that the manifest lists exactly what packages.toml declares, that every file
listed is on disk with its SHA-256 and size, and that nothing else is there.

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
import tarfile
import tomllib
from pathlib import Path, PurePosixPath
from typing import Annotated

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

VENDOR_DIR = Path(__file__).resolve().parent.parent / "web" / "vendor"
DECLARATION = "packages.toml"
MANIFEST = "manifest.json"
DEFAULT_REGISTRY = "<the npm registry>"
MAX_TARBALL_BYTES = 64 * 1024 * 1024
SRI_ALGORITHMS = ("sha512", "sha384", "sha256")
"""The SRI hash algorithms we accept, strongest first (SRI §3.3.3 prefers the strongest)."""

_NAME = re.compile(r"^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$")
_EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_LICENCE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE)([.-].*)?$", re.IGNORECASE)


class VendorError(Exception):
    """Vendoring could not be done: a package, version or file that is not there, a
    download that failed or does not match its integrity, or a bad packages.toml."""


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
    """A vendored package: where it came from, under what licence, and its files."""

    name: PackageName
    version: ExactVersion
    license: str
    """The `license` of its package.json (an SPDX expression), as published."""
    tarball: str
    """`dist.tarball`: the URL it was downloaded from."""
    integrity: str
    """`dist.integrity`: the tarball's SRI hash, checked before anything was taken from it."""
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
            raise VendorError(f"the download does not match its integrity {integrity!r}")
    raise VendorError(f"no sha512, sha384 or sha256 hash in the integrity {integrity!r}")


def default_registry() -> str:
    """npm's own setting (`npm_config_registry`, as npm exports it), else the public registry."""
    for name in ("npm_config_registry", "NPM_CONFIG_REGISTRY"):
        value = os.environ.get(name, "").strip()
        if value:
            return value.rstrip("/")
    return DEFAULT_REGISTRY


def _get(client: httpx.Client, url: str, what: str, limit: int) -> bytes:
    try:
        with client.stream("GET", url) as response:
            if response.status_code == 404:
                raise VendorError(f"{what} is not on the registry ({url}: 404)")
            if response.status_code != 200:
                raise VendorError(f"{what}: {url} answered {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise VendorError(f"{what}: {url} is over {limit} bytes")
            return bytes(body)
    except httpx.HTTPError as error:
        raise VendorError(f"{what}: could not fetch {url}: {error}") from error


def _fetch_package(
    client: httpx.Client, registry: str, wanted: DeclaredPackage
) -> tuple[VendoredPackage, dict[str, bytes]]:
    """The package's manifest entry and its files' contents by path inside the package."""
    what = f"{wanted.name}@{wanted.version}"
    url = f"{registry}/{wanted.name.replace('/', '%2F')}/{wanted.version}"
    try:
        metadata = json.loads(_get(client, url, what, limit=16 * 1024 * 1024))
        dist = metadata["dist"]
        tarball_url, integrity = dist["tarball"], dist["integrity"]
        if metadata["version"] != wanted.version or not isinstance(tarball_url, str):
            raise VendorError(f"{what}: the registry answered for {metadata['version']!r}")
    except (ValueError, KeyError, TypeError) as error:
        raise VendorError(f"{what}: the registry's metadata has no dist.integrity") from error
    tarball = _get(client, tarball_url, what, limit=MAX_TARBALL_BYTES)
    verify_integrity(tarball, integrity)
    contents = _tarball_files(tarball, what)
    licence_files = sorted(p for p in contents if "/" not in p and _LICENCE_FILE.match(p))
    files: dict[str, bytes] = {}
    for path in sorted({*wanted.files, *licence_files, "package.json"}):
        if path not in contents:
            raise VendorError(f"{what} has no file {path}")
        files[path] = contents[path]
    licence = metadata.get("license")
    package = VendoredPackage(
        name=wanted.name,
        version=wanted.version,
        license=licence if isinstance(licence, str) else "(see its licence files)",
        tarball=tarball_url,
        integrity=integrity,
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


def fetch(
    directory: Path = VENDOR_DIR,
    *,
    registry: str | None = None,
    client: httpx.Client | None = None,
) -> Manifest:
    """Download every declared package, verify it, and rewrite web/vendor/ and its manifest.

    Raises VendorError (leaving web/vendor/ as it was) if any package cannot be
    fetched or verified. Returns the new manifest.
    """
    declaration = read_declaration(directory)
    base = (registry or default_registry()).rstrip("/")
    owned = client is None
    http = client or httpx.Client(timeout=60.0, follow_redirects=True)
    try:
        fetched = [_fetch_package(http, base, wanted) for wanted in declaration.package]
    finally:
        if owned:
            http.close()
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
